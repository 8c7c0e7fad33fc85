echo new > three.txt
