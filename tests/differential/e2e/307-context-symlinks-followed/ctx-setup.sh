mkdir -p realdir/sub d2
echo f > realdir/file; echo s > realdir/sub/s
ln -s realdir linkdir; ln -s /realdir abslinkdir; ln -s linkdir chain; ln -s realdir/file linkfile
ln -s ../realdir d2/up; ln -s /realdir/file absfile; ln -s ../../../realdir escdir
