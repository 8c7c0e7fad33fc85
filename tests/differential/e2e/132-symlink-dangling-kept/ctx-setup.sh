mkdir -p d && echo x > d/x && ln -s missing d/dangling && ln -s /nowhere/at/all d/abs-dangling && ln -s ../../.. d/escape
