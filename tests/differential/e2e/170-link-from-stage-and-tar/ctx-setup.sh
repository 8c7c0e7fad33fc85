mkdir -p t/x && echo y > t/x/y && tar --numeric-owner --owner=3 --group=4 --mtime=@1600000000 -C t -cf t.tar x && rm -rf t
