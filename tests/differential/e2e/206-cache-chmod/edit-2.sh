chmod 0700 d/x
