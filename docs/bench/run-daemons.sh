#!/usr/bin/env bash
# Runs ../shared/bench with daemons side by side (as root; setup-bases.sh and
# make-corpus.sh must have run):
#   MODE=kilnd-vs-buildkit (default): kiln's CLI on kilnd ("kiln") beside `docker buildx`
#     with the remote driver on BuildKit v0.24's buildkitd ("buildkit");
#   MODE=kilnd-vs-embedded: kiln embedded ("kiln") beside kiln's CLI on kilnd ("buildkit"
#     slot, named kilnd);
#   MODE=embedded-vs-buildkit: kiln embedded ("kiln") beside BuildKit v0.24 ("buildkit");
#     BUILDERS="kiln buildkit docker buildah" adds dockerd's BuildKit and buildah to the
#     same interleaved run.
# buildkitd comes from $BUILDKITD (default /work/oracle/bin/buildkitd, built from
# BuildKit's v0.24.0 sources as DEVELOPERS.md says) and buildx is the docker CLI plugin.
# Defaults: SCENARIOS=copy-tree, MEASUREMENTS="cold noop change", REPEAT=3; add "cache"
# for cache-export (mode=max to a registry) and cache-import (an empty builder imports it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cargo build --release --locked -p kiln -p kilnd --manifest-path "$repo/Cargo.toml"
export KILN="$repo/target/release/kiln"
run=/run/kiln-bench
mkdir -p "$run"
kilnd_address="unix://$run/kilnd.sock"
bk_address="unix://$run/buildkitd.sock"
buildkitd=${BUILDKITD:-/work/oracle/bin/buildkitd}
cat >"$run/buildkitd.toml" <<TOML
[registry."127.0.0.1:5000"]
  http = true
  insecure = true
[registry."127.0.0.1:5001"]
  http = true
  insecure = true
TOML

# One builder slot's variables: PREFIX NAME CLI BUILDER SETUP TEARDOWN PIDFILE.
slot() {
  local p=$1 name=$2 cli=$3 builder=$4
  local target=""
  [ -n "$builder" ] && target="--builder $builder"
  export "${p}_NAME=$name"
  export "${p}_BUILD=$cli build $target --progress=plain"
  export "${p}_RESET=$here/reset.sh '$cli' '$builder'"
  export "${p}_EXPORT=$cli build $target --progress=plain -t {tag} -f {dockerfile} {build_args} --output type=oci,dest={out} {context}"
  export "${p}_PUSH=$cli build $target --progress=plain -t {dest} -f {dockerfile} {build_args} --output type=image,push=true,registry.insecure=true {context}"
  export "${p}_VERIFY=$here/verify.sh '$cli' '$builder' {dockerfile} {context} {build_args}"
  export "${p}_CACHE_EXPORT=$cli build $target --progress=plain -f {dockerfile} {build_args} --cache-to type=registry,ref={dest},mode=max,registry.insecure=true --output type=cacheonly {context}"
  export "${p}_CACHE_IMPORT=$cli build $target --progress=plain -f {dockerfile} {build_args} --cache-from type=registry,ref={dest},registry.insecure=true --output type=cacheonly {context}"
  export "${p}_SETUP=$5"
  export "${p}_TEARDOWN=$6"
  export "${p}_DAEMON_PIDFILE=$7"
}

start_kilnd="rm -f $run/kilnd.sock; $repo/target/release/kilnd --root /var/tmp/kiln-bench-kilnd --addr $kilnd_address >$run/kilnd.log 2>&1 & echo \$! >$run/kilnd.pid; for i in \$(seq 100); do [ -S $run/kilnd.sock ] && break; sleep 0.1; done"
stop_kilnd="kill \$(cat $run/kilnd.pid) 2>/dev/null; sleep 1"
start_bk="rm -f $run/buildkitd.sock; $buildkitd --root /var/tmp/kiln-bench-buildkitd --addr $bk_address --config $run/buildkitd.toml >$run/buildkitd.log 2>&1 & echo \$! >$run/buildkitd.pid; for i in \$(seq 100); do [ -S $run/buildkitd.sock ] && break; sleep 0.1; done; docker buildx rm kiln-bench-bk >/dev/null 2>&1; docker buildx create --name kiln-bench-bk --driver remote $bk_address >/dev/null"
stop_bk="docker buildx rm kiln-bench-bk >/dev/null 2>&1; kill \$(cat $run/buildkitd.pid) 2>/dev/null; sleep 1"

case "${MODE:-kilnd-vs-buildkit}" in
  kilnd-vs-buildkit)
    slot KILN kilnd "$KILN" "$kilnd_address" "$start_kilnd" "$stop_kilnd" "$run/kilnd.pid"
    slot BK buildkit-v0.24 "docker buildx" kiln-bench-bk "$start_bk" "$stop_bk" "$run/buildkitd.pid"
    ;;
  kilnd-vs-embedded)
    export KILN_ROOT=${KILN_ROOT:-/var/tmp/kiln-bench-state}
    slot KILN kiln-embedded "$KILN" "" "" "" ""
    slot BK kilnd "$KILN" "$kilnd_address" "$start_kilnd" "$stop_kilnd" "$run/kilnd.pid"
    ;;
  embedded-vs-buildkit)
    export KILN_ROOT=${KILN_ROOT:-/var/tmp/kiln-bench-state}
    slot KILN kiln "$KILN" "" "" "" ""
    slot BK buildkit-v0.24 "docker buildx" kiln-bench-bk "$start_bk" "$stop_bk" "$run/buildkitd.pid"
    ;;
  *) echo "MODE must be kilnd-vs-buildkit, kilnd-vs-embedded or embedded-vs-buildkit" >&2; exit 2 ;;
esac
export SCENARIOS=${SCENARIOS:-copy-tree} MEASUREMENTS=${MEASUREMENTS:-cold noop change} REPEAT=${REPEAT:-3}
cd "$repo/../shared/bench"
./run-peers.sh -b "${BUILDERS:-kiln buildkit}"
