#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for SECONDS each (default 600), one after the other,
# and records what each did in docs/reliability/fuzz-figures.txt, which
# docs/reliability/run.sh puts in the table of docs/reliability.md.
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
#   bash docs/reliability/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-600}"
figures="docs/reliability/fuzz-figures.txt"
cd fuzz
cargo +nightly fuzz build -O
for target in $(cargo +nightly fuzz list); do
  log="$(mktemp)"
  set +e
  # One worker, no leak detection of the whole process (targets use temp dirs).
  cargo +nightly fuzz run -O "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 \
    -detect_leaks=0 >"$log" 2>&1
  status=$?
  set -e
  runs="$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')"
  if [ "$status" -eq 0 ]; then outcome="no panic, hang or escape"; else outcome="FAILED (see fuzz/artifacts/$target)"; fi
  echo "fuzz $target: ${seconds} s, ${runs:-0} inputs, $outcome"
  line="fuzz | target \`$target\`: seconds, inputs tried, outcome | ${seconds}, ${runs:-0}, $outcome"
  touch "../$figures"
  grep -v "target \`$target\`:" "../$figures" >"../$figures.tmp" || true
  echo "$line" >>"../$figures.tmp"
  mv "../$figures.tmp" "../$figures"
  rm -f "$log"
done
