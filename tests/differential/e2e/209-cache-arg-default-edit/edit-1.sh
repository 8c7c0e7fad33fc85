sed -i 's/^ARG V=one/ARG V=two/' Dockerfile
