echo new > sub/new-file
