#!/usr/bin/env bash
# The cross-compiled C build of issue 20 (`FROM --platform=$BUILDPLATFORM` Debian with
# its aarch64 cross gcc, the program run in a multi-arch busybox, arm64 under QEMU):
# wall seconds of the two-platform build and of each platform alone, every build on a
# fresh state, through BuildKit v0.24 (buildkitd + buildctl, `$ORACLE`, default
# /work/oracle/bin) and kiln (`$KILN`, default target/release/kiln).
# Needs what `cargo test -p kiln --test it cross_compiled` leaves in /var/tmp/kiln-test
# (the busybox-static .debs and the debootstrapped Debian), root, docker-registry,
# skopeo, umoci and QEMU's binfmt_misc handlers.
set -euo pipefail
W="$(mktemp -d)"; P=5919; R=127.0.0.1:$P
ORACLE="${ORACLE:-/work/oracle/bin}"
KILN="${KILN:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/kiln}"
C="${KILN_TEST_CACHE:-/var/tmp/kiln-test}"
cat > $W/reg.yml <<Y
version: 0.1
storage:
  filesystem:
    rootdirectory: $W/regdata
http:
  addr: $R
log:
  level: error
Y
docker-registry serve $W/reg.yml >/dev/null 2>&1 & echo $! > $W/reg.pid
sleep 1
skopeo copy --quiet --dest-tls-verify=false oci-archive:$C/bases/debian-cross.tar:bookworm docker://$R/debian-cross:bookworm
for arch in amd64 arm64; do
  d=$W/bb-$arch; rm -rf $d; mkdir -p $d/rootfs/{bin,etc,tmp,root}
  dpkg-deb -x $C/debs/busybox-static_*_$arch.deb $d/deb
  cp $d/deb/bin/busybox $d/rootfs/bin/busybox
  for a in $(/bin/busybox --list-full); do [ "$a" = bin/busybox ] && continue; mkdir -p $d/rootfs/$(dirname $a); ln -sf /bin/busybox $d/rootfs/$a; done
  chmod 1777 $d/rootfs/tmp
  printf 'root:x:0:0:root:/root:/bin/sh\n' > $d/rootfs/etc/passwd; printf 'root:x:0:\n' > $d/rootfs/etc/group
  tar -C $d/rootfs -cf $d/layer.tar .
  umoci init --layout $d/layout; umoci new --image $d/layout:1; umoci raw add-layer --image $d/layout:1 $d/layer.tar
  umoci config --image $d/layout:1 --architecture $arch --os linux --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin
  skopeo copy --quiet --dest-tls-verify=false oci:$d/layout:1 docker://$R/bb:$arch
done
"$KILN" imagetools create -t $R/bb:multi $R/bb:amd64 $R/bb:arm64
mkdir -p $W/ctx
cat > $W/ctx/Dockerfile <<D
FROM --platform=\$BUILDPLATFORM $R/debian-cross:bookworm AS build
ARG TARGETARCH
COPY hello.c /src/hello.c
RUN case "\$TARGETARCH" in arm64) cc=aarch64-linux-gnu-gcc ;; *) cc=gcc ;; esac && \$cc -static -O2 -o /hello /src/hello.c
FROM $R/bb:multi
COPY --from=build /hello /hello
RUN /hello > /greeting
D
printf '#include <stdio.h>\n#include <sys/utsname.h>\nint main(void){struct utsname u; uname(&u); printf("hello from %%s\\n", u.machine); return 0;}\n' > $W/ctx/hello.c
printf '[registry."%s"]\n  http = true\n' $R > $W/bk.toml
for plats in linux/amd64,linux/arm64 linux/amd64 linux/arm64; do
  rm -rf $W/bkroot; mkdir -p $W/bkroot
  $ORACLE/buildkitd --root $W/bkroot --addr unix://$W/bk.sock --config $W/bk.toml >$W/bk.log 2>&1 & bk=$!
  for i in $(seq 50); do [ -S $W/bk.sock ] && break; sleep 0.2; done
  s=$(date +%s.%N)
  $ORACLE/buildctl --addr unix://$W/bk.sock build --frontend dockerfile.v0 --local context=$W/ctx --local dockerfile=$W/ctx --opt platform=$plats --output type=local,dest=$W/out-${plats//[\/,]/_} >$W/build.log 2>&1
  e=$(date +%s.%N)
  echo "buildkit $plats: $(echo "$e - $s" | bc) s"
  kill $bk; wait $bk 2>/dev/null || true
  rm -f $W/bk.sock
done
for plats in linux/amd64,linux/arm64 linux/amd64 linux/arm64; do
  rm -rf $W/kroot
  s=$(date +%s.%N)
  KILN_ROOT=$W/kroot "$KILN" build --progress=plain --platform $plats -o type=local,dest=$W/kout-${plats//[\/,]/_} $W/ctx >$W/kbuild.log 2>&1
  e=$(date +%s.%N)
  echo "kiln $plats: $(echo "$e - $s" | bc) s"
done
rm -rf $W/kroot
kill "$(cat $W/reg.pid)"
rm -rf "$W"
