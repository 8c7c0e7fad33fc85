mkdir -p real/sub nest
echo f > real/file; echo s > real/sub/s
ln -s real linkdir; ln -s real/file linkfile; ln -s /real abs; ln -s linkdir chain; ln -s ../../real esc
ln -s ../real nest/rel; ln -s /real/file nest/absfile; ln -s missing nest/dangling; ln -s . nest/self
