sed -i 's/echo b > \/b/echo bb > \/b/' Dockerfile
