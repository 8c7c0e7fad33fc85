echo changed > top.txt
