echo new > four.md
