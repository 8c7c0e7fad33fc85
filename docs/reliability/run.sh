#!/usr/bin/env bash
# Runs the reliability suite (issue #19) and rewrites the figures table of
# docs/reliability.md from what its tests report (kiln_test::reliability_figure).
# Needs what .ci/run installs (runc, docker-registry, skopeo, umoci…); run as root.
#   bash docs/reliability/run.sh
# The long form: KILN_SOAK_SECONDS=600 KILN_CRASH_ROUNDS=50 bash docs/reliability/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# The tests that measure reliability, by module of the kiln and kilnd test binaries.
filter='crash:: | disk_full:: | escapes:: | context::context_symlinks | registry_faults:: | soak:: | run::secrets_ | daemon::tcp_needs | daemon::bad_requests | gateway::gateway_solves_have_the_entitlements'
KILN_RELIABILITY_LOG="$log" cargo nextest run --locked -p kiln -p kilnd \
  -E "test(/^(${filter// /})/)" --no-fail-fast
# The fuzz figures, from the last `bash docs/reliability/fuzz.sh` (it takes an hour).
[ -f docs/reliability/fuzz-figures.txt ] && cat docs/reliability/fuzz-figures.txt >>"$log"
python3 - "$log" docs/reliability.md <<'PY'
import sys, datetime
log, doc = sys.argv[1], sys.argv[2]
rows = [l.rstrip("\n").split(" | ", 2) for l in open(log) if l.count(" | ") >= 2]
rows.sort(key=lambda r: r[0])
table = ["| area | what was done to kiln | figures |", "|---|---|---|"]
table += [f"| {a} | {w} | {v} |" for a, w, v in rows]
stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
block = "\n".join(["<!-- figures:start -->", f"(generated {stamp} by `bash docs/reliability/run.sh`)", ""] + table + ["<!-- figures:end -->"])
text = open(doc).read()
start, end = text.index("<!-- figures:start -->"), text.index("<!-- figures:end -->") + len("<!-- figures:end -->")
open(doc + ".tmp", "w").write(text[:start] + block + text[end:])
import os; os.replace(doc + ".tmp", doc)
print(f"{len(rows)} figures written to {doc}")
PY
