#!/usr/bin/env bash
# What a builder adds around a step (issue #21): big-layer cold, embedded kiln beside
# BuildKit v0.24 (buildx, remote driver), interleaved. Prints each build's wall time,
# its RUN step's time (the step's DONE in the plain progress) and the difference, then
# the same RUN's commands timed bare on the host (busybox sh, no builder at all).
# As root, after ../shared/bench's setup-bases.sh and make-corpus.sh; REPS (default
# "1 2 3 4 5 6 7 8"); buildkitd from $BUILDKITD (default /work/oracle/bin/buildkitd).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cargo build --release --locked -p kiln --manifest-path "$repo/Cargo.toml"
kiln="$repo/target/release/kiln"
ctx="${BENCH_WORKDIR:-/var/tmp/kiln-bench}/corpus/big-layer"
export KILN_ROOT=/var/tmp/kiln-overhead-state
run=/run/kiln-overhead
mkdir -p "$run"
printf '[registry."127.0.0.1:5000"]\n  http = true\n  insecure = true\n' >"$run/buildkitd.toml"
rm -f "$run/bk.sock"
"${BUILDKITD:-/work/oracle/bin/buildkitd}" --root /var/tmp/kiln-overhead-bk --addr "unix://$run/bk.sock" \
  --config "$run/buildkitd.toml" >"$run/bk.log" 2>&1 &
bk_pid=$!
trap 'docker buildx rm kiln-overhead >/dev/null 2>&1 || true; kill $bk_pid' EXIT
for _ in $(seq 100); do [ -S "$run/bk.sock" ] && break; sleep 0.1; done
docker buildx rm kiln-overhead >/dev/null 2>&1 || true
docker buildx create --name kiln-overhead --driver remote "unix://$run/bk.sock" >/dev/null
# The RUN step's DONE seconds in a plain progress log.
step_time() {
  local n
  n=$(grep -m1 -E '^#[0-9]+ \[.*\] RUN ' "$1" | sed -E 's/^#([0-9]+) .*/\1/')
  grep -E "^#$n DONE " "$1" | tail -1 | sed -E 's/.* DONE ([0-9.]+)s/\1/'
}
for rep in ${REPS:-1 2 3 4 5 6 7 8}; do
  for builder in kiln buildkit; do
    if [ "$builder" = kiln ]; then cli=("$kiln"); target=(); else cli=(docker buildx); target=(--builder kiln-overhead); fi
    bash "$here/reset.sh" "${cli[*]}" "${target[1]:-}" >/dev/null 2>&1
    sync && echo 3 >/proc/sys/vm/drop_caches
    log="$run/$builder-$rep.log"
    start=$(date +%s.%N)
    "${cli[@]}" build "${target[@]}" --progress=plain -t overhead:"$builder" -f "$ctx/Dockerfile" "$ctx" >"$log" 2>&1
    end=$(date +%s.%N)
    step=$(step_time "$log")
    echo "$builder rep=$rep wall=$(echo "$end - $start" | bc) run_step=$step around=$(echo "$end - $start - $step" | bc)"
  done
done
# The RUN's commands without a builder.
bare="$run/bare"
for rep in 1 2 3; do
  rm -rf "$bare" && mkdir -p "$bare/data" "$bare/tmp"
  sync && echo 3 >/proc/sys/vm/drop_caches
  start=$(date +%s.%N)
  busybox sh -c "cd $bare && seq 10000000 13599999 > tmp/chunk && for i in \$(seq 1 17); do cat tmp/chunk; done | head -c 536870912 > data/big.txt && rm tmp/chunk"
  end=$(date +%s.%N)
  echo "bare rep=$rep wall=$(echo "$end - $start" | bc)"
done
rm -rf "$bare"
