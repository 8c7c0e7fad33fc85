#!/usr/bin/env bash
# KILN_VERIFY / BK_VERIFY: the image's files (a cached rebuild into a local directory),
# and the scenario's check run inside them with chroot. The check is read from the
# scenario's bench.env rather than given as {cmd}: the harness's template substitution
# mangles the `&&` in copy-tree's check.
# Usage: verify.sh CLI BUILDER DOCKERFILE CONTEXT [BUILD ARGS…] (BUILDER may be "").
set -uo pipefail
read -r -a cli <<<"$1"
target=()
[ -n "$2" ] && target=(--builder "$2")
dockerfile=$3 context=$4
shift 4
VERIFY_CMD=
# shellcheck disable=SC1090
. "$(dirname "$0")/../../../shared/bench/scenarios/$(basename "$context")/bench.env"
d=$(mktemp -d)
"${cli[@]}" build "${target[@]}" -q -f "$dockerfile" "$@" -o "type=local,dest=$d" "$context" >/dev/null || exit 1
chroot "$d" /bin/sh -c "$VERIFY_CMD"
rc=$?
rm -rf "$d"
exit $rc
