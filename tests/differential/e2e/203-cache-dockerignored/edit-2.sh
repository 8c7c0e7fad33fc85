mkdir -p tmp && echo x > tmp/new
