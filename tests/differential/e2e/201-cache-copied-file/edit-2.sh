echo changed > b.txt
