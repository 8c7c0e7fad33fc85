echo changed > a.txt
