#!/usr/bin/env bash
# Runs ../shared/bench with kiln beside dockerd's BuildKit and buildah (as root; the
# harness's setup-bases.sh and make-corpus.sh must have run). REPEAT defaults to 1.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cargo build --release --locked -p kiln --manifest-path "$repo/Cargo.toml"
export KILN_ROOT=${KILN_ROOT:-/var/tmp/kiln-bench-state}
export KILN="$repo/target/release/kiln"
export KILN_BUILD="$KILN build --progress=plain"
export KILN_RESET="$here/reset.sh"
export KILN_EXPORT="$KILN build --progress=plain -t {tag} -f {dockerfile} {build_args} --output type=oci,dest={out} {context}"
export KILN_PUSH="$KILN build --progress=plain -t {dest} -f {dockerfile} {build_args} --push {context}"
export KILN_CACHE_EXPORT="$KILN build --progress=plain -f {dockerfile} {build_args} --cache-to type=registry,ref={dest},mode=max,registry.insecure=true --output type=cacheonly {context}"
export KILN_CACHE_IMPORT="$KILN build --progress=plain -f {dockerfile} {build_args} --cache-from type=registry,ref={dest},registry.insecure=true --output type=cacheonly {context}"
export KILN_VERIFY="$here/verify.sh $KILN \"\" {dockerfile} {context} {build_args}"
export KILN_NAME=kiln
export REPEAT=${REPEAT:-1}
cd "$repo/../shared/bench"
./run-peers.sh -b "${BUILDERS:-docker buildah kiln}"
