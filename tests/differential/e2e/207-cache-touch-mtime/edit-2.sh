touch -d @1700000001 d d/x
