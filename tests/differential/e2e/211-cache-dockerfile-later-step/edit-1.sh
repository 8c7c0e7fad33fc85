sed -i 's/echo final/echo FINAL/' Dockerfile
