mkdir -p e/newdir
