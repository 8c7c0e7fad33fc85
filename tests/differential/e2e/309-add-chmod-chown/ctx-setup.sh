mkdir -p d/e src/in; echo f > f; echo x > d/e/x; echo t > src/in/t; ln -s in/t src/l
chown -R 1000:1000 src; tar -czf a.tar.gz -C src .; rm -rf src
