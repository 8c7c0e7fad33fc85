touch -d @1690000000 f.txt
