mkdir -p dir1/sub1 dir1/sub2 dir2/sub1 other/subx
echo 1 > dir1/sub1/a.txt; echo 2 > dir1/sub2/b.txt; echo 3 > dir2/sub1/c.txt; echo 4 > dir2/sub1/d.md; echo 5 > other/subx/e.txt; echo 6 > other/subx/f.md
