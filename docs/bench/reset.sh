#!/usr/bin/env bash
# KILN_RESET / BK_RESET (untimed): empty a builder's cache, then pull both bases into
# it, as the other builders have them locally (COLD_BASES=local).
# Usage: reset.sh [CLI [BUILDER]]: CLI is `kiln` (default "$KILN") or `docker buildx`;
# BUILDER, when given, is passed as `--builder` (a daemon address for kiln).
set -euo pipefail
read -r -a cli <<<"${1:-$KILN}"
target=()
[ -n "${2:-}" ] && target=(--builder "$2")
"${cli[@]}" prune --all --force "${target[@]}" >/dev/null
d=$(mktemp -d)
for base in "${BUSYBOX_IMAGE:-127.0.0.1:5000/busybox:latest}" "${DEBIAN_IMAGE:-127.0.0.1:5000/debian:bookworm}"; do
  printf 'FROM %s\nRUN true\n' "$base" >"$d/Dockerfile"
  "${cli[@]}" build "${target[@]}" --progress=quiet "$d" >/dev/null 2>&1
done
rm -rf "$d"
