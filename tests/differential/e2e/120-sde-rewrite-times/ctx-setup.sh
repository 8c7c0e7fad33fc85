touch -d @1600000000 old.txt
touch -d @1800000000 new.txt
touch -d @1650000000 d/x
mkdir -p t && echo in > t/in && touch -d @1400000000 t/in
tar --mtime=@1750000000 -C t -cf a.tar in && rm -rf t
