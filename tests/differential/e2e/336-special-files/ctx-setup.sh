mkfifo pipe; touch sx; chmod 4755 sx; mkdir st; chmod 1777 st
python3 -c "import socket; s=socket.socket(socket.AF_UNIX); s.bind('sock')"
chmod 0640 sock
