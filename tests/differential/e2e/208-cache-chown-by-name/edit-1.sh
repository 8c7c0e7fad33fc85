sed -i 's/^app:x:1000:1000:/app:x:1500:1000:/' passwd
