chmod 0750 src; chmod 0700 src/sub; chmod 0711 other
