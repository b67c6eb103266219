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

# expect_errors NAME RC_WANTED PREFIX FILE RC POSITION_AND_MESSAGE...: exit status RC is RC_WANTED
# and the output ($tmp/out) has exactly one "PREFIXFILE:LINE:COL: " line per expected error, each
# beginning with PREFIXFILE:<expected>.
expect_errors() {
    local name=$1 want=$2 prefix=$3 file=$4 rc=$5 n ok=1 e
    shift 5
    if [ "$rc" -ne "$want" ]; then
        fail "$name: exit status $rc (want $want):"
        sed 's/^/    /' "$tmp/out"
        return
    fi
    for e in "$@"; do
        if ! grep -Fq -- "$prefix$file:$e" "$tmp/out"; then
            fail "$name: no line '$prefix$file:$e'"
            ok=0
        fi
    done
    n=$(awk -v p="$prefix$file:" 'index($0, p) == 1 && substr($0, length(p) + 1) ~ /^[0-9]+:[0-9]+: / { n++ }
        END { print n + 0 }' "$tmp/out")
    if [ "$n" -ne $# ]; then
        fail "$name: $n positioned error lines, want $#:"
        sed 's/^/    /' "$tmp/out"
        ok=0
    fi
    if [ "$ok" -eq 1 ]; then echo "ok: $name: exit $rc, all $# errors with file:line:col"; fi
}

# start_daemon FILE: earshotd as the unit starts it (no --check-config), with no JACK server.
start_daemon() {
    local rc=0
    JACK_NO_START_SERVER=1 JACK_DEFAULT_SERVER="nosuch-$$" NOTIFY_SOCKET='' timeout 20 "$earshotd" \
        --config "$1" --state-dir "$tmp/state" --runtime-dir "$tmp/run" --no-mlock >"$tmp/out" 2>&1 || rc=$?
    echo "$rc"
}

# Several errors at once: all of them, each with its position.
multi="$tmp/multi.yaml"
printf '%s\n' 'version: 1' 'jack:' '  client_nam: earshot' 'inputs:' '  - id: Click' 'musicians:' \
    '  - id: drums' '    output: stereoo' '    calibration: { sine_dbfs: -20, db_spl: 94 }' \
    '    protection: { peak_ceiling_db_spl: 500 }' >"$multi"
multi_errors=("3:3: jack.client_nam: unknown key 'client_nam' (did you mean 'client_name'?)"
    "5:9: inputs[0].id: 'Click' is not a valid id"
    "8:13: musicians[0].output: expected 'mono' or 'stereo', got 'stereoo'"
    "10:40: musicians[0].protection.peak_ceiling_db_spl: 500 is out of range [80, 140] dB SPL")
rc=0
"$earshotd" --check-config --config "$multi" >"$tmp/out" 2>&1 || rc=$?
expect_errors "--check-config, four errors" 78 "" "$multi" "$rc" "${multi_errors[@]}"
rc=$(start_daemon "$multi")
expect_errors "earshotd started on it" 78 "<3>" "$multi" "$rc" "${multi_errors[@]}"
grep -Fqx "<3>invalid config: not starting (exit 78)" "$tmp/out" || fail "earshotd started on it: no 'not starting' line"
if [ -e "$tmp/run/status.json" ] || [ -e "$tmp/run/control.sock" ]; then
    fail "earshotd started on a bad config created status.json or control.sock"
fi

# A control.group this machine does not have: the loader cannot know it, --check-config must.
group="earshot-nosuch-$$"
grp="$tmp/group.yaml"
printf '%s\n' 'version: 1' "control: { group: $group }" 'inputs:' '  - id: a' 'musicians:' '  - id: m' \
    '    output: mono' '    calibration: { sine_dbfs: -20, db_spl: 94 }' '    protection: { peak_ceiling_db_spl: 110 }' \
    '    mix: { sends: { a: { gain_db: 0 } } }' >"$grp"
rc=0
"$earshotd" --check-config --config "$grp" >"$tmp/out" 2>&1 || rc=$?
expect_errors "--check-config, unknown control.group" 78 "" "$grp" "$rc" "2:19: control.group: no group '$group'"
rc=$(start_daemon "$grp")
expect_errors "earshotd started with it" 78 "<3>" "$grp" "$rc" "2:19: control.group: no group '$group'"
# The same file with a group that exists is valid.
sed -i "s/group: $group/group: root/" "$grp"
rc=0
"$earshotd" --check-config --config "$grp" >"$tmp/out" 2>&1 || rc=$?
if [ "$rc" -eq 0 ]; then
    echo "ok: control.group root: valid"
else
    fail "control.group root: exit status $rc (want 0):"
    sed 's/^/    /' "$tmp/out"
fi

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
