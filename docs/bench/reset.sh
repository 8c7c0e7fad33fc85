#!/usr/bin/env bash
# KILN_RESET (untimed): empty kiln's cache, then pull both bases into it, as the other
# builders have them locally (COLD_BASES=local).
set -euo pipefail
"$KILN" prune --all --force >/dev/null
d=$(mktemp -d)
for base in "${BUSYBOX_IMAGE:-127.0.0.1:5000/busybox:latest}" "${DEBIAN_IMAGE:-127.0.0.1:5000/debian:bookworm}"; do
  printf 'FROM %s\nRUN true\n' "$base" >"$d/Dockerfile"
  "$KILN" build --progress=quiet "$d" >/dev/null
done
rm -rf "$d"
