chmod 0755 script
