#!/usr/bin/env bash
# The test command (README quick start, called by .ci/run): installs what is missing, builds with
# warnings as errors, runs every test (unit, end-to-end, format check, a short fuzz run) and ends with
# the line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh || exit 1

BUILD=${BUILD_DIR:-build}
if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" --buildtype=release || exit 1
fi
ninja -C "$BUILD" || exit 1

# JACK tests start private servers; at most 8 servers may run at once on a machine.
meson test -C "$BUILD" --print-errorlogs --num-processes "${TEST_PROCESSES:-2}" "$@"
rc=$?

/usr/bin/python3 - "$BUILD/meson-logs/testlog.json" <<'PY'
import json, sys
r = [json.loads(l)["result"] for l in open(sys.argv[1]) if l.strip()]
ok = sum(x in ("OK", "EXPECTEDFAIL") for x in r)
bad = sum(x in ("FAIL", "UNEXPECTEDPASS", "TIMEOUT", "ERROR") for x in r)
skip = sum(x == "SKIP" for x in r)
print(f"{ok} passed, {bad} failed" + (f", {skip} skipped" if skip else ""))
PY
exit $rc
