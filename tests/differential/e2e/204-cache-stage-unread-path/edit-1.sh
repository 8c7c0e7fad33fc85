echo changed > two.txt
