mkdir -p t/dir/sub && echo one > t/dir/one && echo two > t/dir/sub/two && chmod 0750 t/dir/sub
ln -s one t/dir/link
tar --numeric-owner --owner=5 --group=6 --mtime=@1600000000 -C t -cf owned.tar dir
tar --numeric-owner --owner=7 --group=8 --mtime=@1600000000 -C t -czf owned.tar.gz dir
rm -rf t
