#!/bin/bash
# Records the expected result of Bake differential cases with the real docker buildx.
#
#   tests/differential/bake/record.sh [CASE_DIR...]     (default: every case)
#
# The buildx binary is $KILN_BUILDX, else `docker-buildx` on PATH, else
# ~/.docker/cli-plugins/docker-buildx; it must be v0.28.0. Each case runs as the
# conformance README says: cwd = the case directory, an empty environment plus the
# case's `env` (and PATH/HOME), stdin from /dev/null, `bake --print ARGS...`.
# buildx walks a matrix's keys in Go map order, which is random, so every case runs
# several times and the most frequent result is kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bx=${KILN_BUILDX:-$(command -v docker-buildx || echo "$HOME/.docker/cli-plugins/docker-buildx")}
version=$("$bx" version | awk '{print $2}')
if [ "$version" != "v0.28.0" ]; then
  echo "record.sh: $bx is buildx $version, not v0.28.0" >&2
  exit 1
fi
runs=${RUNS:-9}
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
if [ $# -eq 0 ]; then set -- "$here"/[0-9]*/; fi
for dir in "$@"; do
  dir=${dir%/}
  args=(); envs=()
  [ -f "$dir/args" ] && while IFS= read -r l || [ -n "$l" ]; do args+=("$l"); done < "$dir/args"
  [ -f "$dir/env" ] && while IFS= read -r l || [ -n "$l" ]; do [ -n "$l" ] && envs+=("$l"); done < "$dir/env"
  results=$(mktemp -d)
  for i in $(seq 1 "$runs"); do
    rc=0
    (cd "$dir" && env -i PATH="$PATH" HOME="$home" "${envs[@]}" "$bx" bake --print "${args[@]}" \
      < /dev/null > "$results/$i.out" 2> "$results/$i.err") || rc=$?
    if [ $rc -eq 0 ]; then
      echo ok > "$results/$i.kind"
    else
      # The message without buildx's decoration: `ERROR: `, an HCL diagnostic's
      # `file:line,col-col: ` and `, and N other diagnostic(s)`; a failed
      # validation is just its message.
      grep -m1 '^ERROR: ' "$results/$i.err" \
        | sed -E 's/^ERROR: //; s/^[^ :]+:[0-9]+,[0-9]+(-[0-9]+(,[0-9]+)?)?: //; s/, and [0-9]+ other diagnostic\(s\)$//; s/^Validation failed; //' \
        > "$results/$i.out"
      echo error > "$results/$i.kind"
    fi
  done
  best=$(for i in $(seq 1 "$runs"); do echo "$(cat "$results/$i.kind")-$(sha256sum < "$results/$i.out" | cut -c1-16) $i"; done \
    | awk '{n[$1]++; if (!($1 in first)) first[$1] = $2} END {for (k in n) print n[k], first[k]}' \
    | sort -rn | head -1 | awk '{print $2}')
  rm -f "$dir/expected.json" "$dir/expected-error"
  if [ "$(cat "$results/$best.kind")" = ok ]; then
    cp "$results/$best.out" "$dir/expected.json"
  else
    cp "$results/$best.out" "$dir/expected-error"
  fi
  echo "$(basename "$dir"): $(cat "$results/$best.kind")"
  rm -rf "$results"
done
