sed -i 's/^app:x:1000:/app:x:1600:/' group
