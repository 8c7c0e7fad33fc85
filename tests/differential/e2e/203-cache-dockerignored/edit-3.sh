echo changed > kept.txt
