printf 'a\nb\n' > input.txt
