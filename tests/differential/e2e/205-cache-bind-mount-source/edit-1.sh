echo changed > sub/f
