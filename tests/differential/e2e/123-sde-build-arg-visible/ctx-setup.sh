touch -d @1750000000 f.txt
