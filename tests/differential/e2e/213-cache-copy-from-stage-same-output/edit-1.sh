echo 'other line' > input.txt
