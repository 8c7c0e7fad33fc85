mkdir -p real/sub && echo f > real/file.txt && echo s > real/sub/s.txt && ln -s ../file.txt real/sub/up
ln -s real link-to-dir
ln -s real/file.txt link-to-file
