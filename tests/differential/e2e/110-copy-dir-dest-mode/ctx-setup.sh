chmod 0700 private
chmod 0751 odd
chmod 0600 private/secret.txt
