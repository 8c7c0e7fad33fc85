echo changed > outside.txt
