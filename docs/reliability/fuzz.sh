#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (or the ones named) for SECONDS each (default 600),
# JOBS at a time (default 1), and records what each did in
# docs/reliability/fuzz-figures.txt, which docs/reliability/run.sh puts in the table of
# docs/reliability.md. Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`).
#   [JOBS=2] bash docs/reliability/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-600}"
shift || true
figures="$PWD/docs/reliability/fuzz-figures.txt"
cd fuzz
cargo +nightly fuzz build -O
targets=("$@")
((${#targets[@]})) || mapfile -t targets < <(cargo +nightly fuzz list)

# One target: the built binary straight (no rebuild), its figure recorded.
run_one() {
  local target="$1" log status runs outcome
  log="$(mktemp)"
  mkdir -p "corpus/$target" "artifacts/$target"
  set +e
  "target/x86_64-unknown-linux-gnu/release/$target" -artifact_prefix="artifacts/$target/" \
    -max_total_time="$seconds" -rss_limit_mb=2048 -detect_leaks=0 "corpus/$target" >"$log" 2>&1
  status=$?
  set -e
  runs="$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')"
  if [ "$status" -eq 0 ]; then outcome="no panic, hang or escape"; else outcome="FAILED (see fuzz/artifacts/$target)"; fi
  echo "fuzz $target: ${seconds} s, ${runs:-0} inputs, $outcome"
  (
    flock 9
    touch "$figures"
    grep -v "target \`$target\`:" "$figures" >"$figures.tmp" || true
    echo "fuzz | target \`$target\`: seconds, inputs tried, outcome | ${seconds}, ${runs:-0}, $outcome" >>"$figures.tmp"
    sort -o "$figures.tmp" "$figures.tmp"
    mv "$figures.tmp" "$figures"
  ) 9>"$figures.lock"
  rm -f "$log"
}

jobs_max="${JOBS:-1}"
for target in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= jobs_max)); do wait -n || true; done
  run_one "$target" &
done
wait
rm -f "$figures.lock"
