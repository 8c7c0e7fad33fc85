ln -s missing-target dangling
