mkdir -p real && echo i > real/inner.txt && echo c > c
ln -s c b && ln -s b a
ln -s real dl3 && ln -s dl3 dl2 && ln -s dl2 dl1
mkdir mixed && ln -s ../dl1 mixed/x
