mkdir d/empty
