touch -d @1600000000 old.txt
touch -d @1800000000 new.txt
