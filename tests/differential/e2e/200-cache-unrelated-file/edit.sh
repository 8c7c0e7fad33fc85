echo changed > unrelated.txt
