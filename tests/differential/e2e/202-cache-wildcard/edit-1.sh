echo changed > one.txt
