#!/usr/bin/env bash
# KILN_VERIFY: the image's files (a cached rebuild into a local directory), and the
# scenario's check run inside them with chroot. The check is read from the scenario's
# bench.env rather than given as {cmd}: the harness's template substitution mangles
# the `&&` in copy-tree's check.
set -uo pipefail
dockerfile=$1 context=$2
shift 2
VERIFY_CMD=
# shellcheck disable=SC1090
. "$(dirname "$0")/../../../shared/bench/scenarios/$(basename "$context")/bench.env"
d=$(mktemp -d)
"$KILN" build -q -f "$dockerfile" "$@" -o "type=local,dest=$d" "$context" >/dev/null || exit 1
chroot "$d" /bin/sh -c "$VERIFY_CMD"
rc=$?
rm -rf "$d"
exit $rc
