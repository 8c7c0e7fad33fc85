sed -i 's/^nobody:x:65534:65534:nobody:/nobody:x:65534:65534:Nobody:/' passwd
