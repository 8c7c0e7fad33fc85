sed -i 's/^RUN echo unrelated/RUN  echo unrelated/' Dockerfile
