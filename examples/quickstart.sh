#!/usr/bin/env bash
# One command from a fresh Debian machine (as root, with Rust installed) to a real
# multi-stage build: installs what is missing, builds kiln, starts a registry on
# 127.0.0.1:${PORT:-5000} with a busybox base image (built and pushed by kiln), builds the demo
# (RUN steps through runc), and runs the result's command in a chroot.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
packages=(runc docker-registry busybox-static curl libzstd-dev pkg-config)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
cargo build --release --locked -p kiln --manifest-path "$repo/Cargo.toml"
kiln="$repo/target/release/kiln"
port="${PORT:-5000}"
PORT="$port" KILN="$kiln" bash "$repo/examples/setup.sh"
out="${WORK:-/tmp/kiln-examples}/demo-rootfs"
rm -rf "$out"
"$kiln" build -t demo --build-arg "BASE=127.0.0.1:$port/busybox:latest" \
  --output "type=local,dest=$out" "$repo/examples/demo"
echo "--- the image's CMD, run in its filesystem:"
chroot "$out" /bin/busybox cat /out/greeting.txt
