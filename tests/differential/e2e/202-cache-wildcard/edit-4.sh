rm three.txt
