mkdir -p real/sub && echo f > real/file.txt && echo s > real/sub/s.txt
ln -s real link
