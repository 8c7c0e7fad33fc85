#!/usr/bin/env bash
# Starts a local registry on 127.0.0.1:${PORT:-5000} (Debian's docker-registry, data in
# ${WORK:-/tmp/kiln-examples}) and publishes a busybox base image built by kiln from the
# busybox-static package and pushed by kiln. Needs root, runc, docker-registry, busybox-static.
# Stop the registry with: kill "$(cat ${WORK:-/tmp/kiln-examples}/registry.pid)"
set -euo pipefail
PORT="${PORT:-5000}"
WORK="${WORK:-/tmp/kiln-examples}"
KILN="${KILN:-kiln}"
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$WORK/registry"
cat > "$WORK/registry/config.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $WORK/registry/data
http:
  addr: 127.0.0.1:$PORT
log:
  level: error
YAML
if ! curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1; then
  docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 &
  echo $! >"$WORK/registry.pid"
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
fi
# The base image's context: busybox, its applet links, passwd and group.
ctx="$WORK/busybox"
rm -rf "$ctx" && mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/etc" "$ctx/rootfs/tmp" "$ctx/rootfs/root"
cp "$here/busybox/Dockerfile" "$ctx/"
cp /bin/busybox "$ctx/rootfs/bin/busybox"
for applet in $(/bin/busybox --list-full); do
  [ "$applet" = bin/busybox ] && continue
  mkdir -p "$ctx/rootfs/$(dirname "$applet")"
  ln -sf /bin/busybox "$ctx/rootfs/$applet"
done
chmod 1777 "$ctx/rootfs/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$ctx/rootfs/etc/group"
"$KILN" build --progress=plain --push -t "127.0.0.1:$PORT/busybox:latest" "$ctx"
echo "published 127.0.0.1:$PORT/busybox:latest"
