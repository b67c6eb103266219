#!/bin/bash
# meson test `systemd-units`: checks the systemd units with the real systemd tooling, offline
# (units cannot be started here: PID 1 is not systemd, see jack-testing.md §7).
#
#   test_units.sh SYSTEM_UNIT USER_UNIT EARSHOTD GOOD_CONFIG MAX_EXPOSURE MAX_USER_EXPOSURE
#
# SYSTEM_UNIT / USER_UNIT are the test copies configured by systemd/meson.build (ExecStart= points
# at the built earshotd, which `systemd-analyze verify` requires to exist).
#  1. `systemd-analyze verify` of both units must exit 0 AND print nothing: unknown keys and bad
#     values are only warnings with exit status 0.
#  2. `systemd-analyze --offline=yes security` exposure must not exceed the given maxima.
#  3. `earshotd --check-config`: exit 0 on GOOD_CONFIG; exit 78 with file:line:col on a broken one.
set -euo pipefail

if [ $# -ne 6 ]; then
    echo "usage: $0 SYSTEM_UNIT USER_UNIT EARSHOTD GOOD_CONFIG MAX_EXPOSURE MAX_USER_EXPOSURE" >&2
    exit 2
fi
system_unit=$1 user_unit=$2 earshotd=$3 good_config=$4 max_exposure=$5 max_user_exposure=$6

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "SKIP: systemd-analyze not installed"
    exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# The unit name comes from the file name, so verify copies named earshotd.service.
mkdir -p "$tmp/system" "$tmp/user" "$tmp/xdg-runtime"
chmod 0700 "$tmp/xdg-runtime"
cp "$system_unit" "$tmp/system/earshotd.service"
cp "$user_unit" "$tmp/user/earshotd.service"

# run_quiet NAME CMD...: CMD must exit 0 with empty stdout and stderr.
run_quiet() {
    local name=$1 rc=0
    shift
    "$@" >"$tmp/out" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ] || [ -s "$tmp/out" ]; then
        fail "$name: exit status $rc, output:"
        sed 's/^/    /' "$tmp/out"
    else
        echo "ok: $name (exit 0, no output)"
    fi
}

echo "== systemd-analyze verify"
run_quiet "verify system unit" systemd-analyze verify "$tmp/system/earshotd.service"
# A user manager needs $XDG_RUNTIME_DIR, otherwise: "Failed to initialize manager".
run_quiet "verify user unit" env XDG_RUNTIME_DIR="$tmp/xdg-runtime" \
    systemd-analyze --user verify "$tmp/user/earshotd.service"

echo "== systemd-analyze security"
# check_exposure NAME MAX CMD...: parse "→ Overall exposure level for earshotd.service: 0.7 SAFE".
check_exposure() {
    local name=$1 max=$2 rc=0 score
    shift 2
    "$@" >"$tmp/security" 2>&1 || rc=$?
    score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p' "$tmp/security")
    if [ "$rc" -ne 0 ] || [ -z "$score" ]; then
        fail "$name: systemd-analyze security exit status $rc, no score:"
        sed 's/^/    /' "$tmp/security"
    elif awk -v s="$score" -v m="$max" 'BEGIN { exit !(s > m) }'; then
        fail "$name: exposure $score is above $max; settings that count:"
        grep '✗' "$tmp/security" | sed 's/^/    /'
    else
        echo "ok: $name exposure $score (max $max)"
    fi
}
check_exposure "system unit" "$max_exposure" \
    systemd-analyze --offline=yes security "$tmp/system/earshotd.service"
check_exposure "user unit" "$max_user_exposure" env XDG_RUNTIME_DIR="$tmp/xdg-runtime" \
    systemd-analyze --user --offline=yes security "$tmp/user/earshotd.service"

echo "== earshotd --check-config"
rc=0
"$earshotd" --check-config --config "$good_config" >"$tmp/out" 2>&1 || rc=$?
if [ "$rc" -eq 0 ]; then
    echo "ok: $(cat "$tmp/out")"
else
    fail "--check-config on $good_config: exit status $rc (want 0):"
    sed 's/^/    /' "$tmp/out"
fi

# An unterminated flow sequence: a YAML syntax error with a position.
bad="$tmp/broken.yaml"
printf 'version: 1\njack:\n  client_name: [earshot\n' >"$bad"
rc=0
"$earshotd" --check-config --config "$bad" >"$tmp/out" 2>&1 || rc=$?
if [ "$rc" -ne 78 ]; then
    fail "--check-config on a broken config: exit status $rc (want 78):"
    sed 's/^/    /' "$tmp/out"
elif ! grep -Eq "^$bad:[0-9]+:[0-9]+: " "$tmp/out"; then
    fail "--check-config on a broken config: no '$bad:LINE:COL: ' in the message:"
    sed 's/^/    /' "$tmp/out"
else
    echo "ok: broken config -> exit 78: $(head -n 1 "$tmp/out")"
fi

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
