mkdir -p real && echo f > real/f.txt && echo hostless > etcpasswd
ln -s /real/f.txt abs-file
ln -s /real abs-dir
ln -s /etcpasswd abs-etc
