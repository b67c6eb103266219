#!/usr/bin/env bash
# Builds a libFuzzer target with clang (ASan + UBSan) in a temporary directory and runs it for
# SECONDS on a copy of its seed corpus (tests/fuzz/corpus/TARGET, plus the example configs for
# `config`). Exits 0 when the run ends without a finding, non-zero when the fuzzer finds a crash,
# a sanitizer report, a hang (> 5 s per input) or runaway memory.
#
#   tests/fuzz/run_fuzz.sh TARGET SECONDS      e.g.  tests/fuzz/run_fuzz.sh config 60
#
# Targets: config (the YAML loader, tests/fuzz/fuzz_config.cpp), control (the control socket's
# request parser, tests/fuzz/fuzz_control.cpp), midi (the MIDI decoder and mapper,
# tests/fuzz/fuzz_midi.cpp). To add a parser: write
# tests/fuzz/fuzz_<name>.cpp, seed tests/fuzz/corpus/<name>/, and add a case below.
# Environment: FUZZ_CXX (default clang++-14); FUZZ_ARTIFACTS (default ./fuzz-artifacts), where the
# inputs of findings and the full log are kept when the run fails.
set -euo pipefail

usage() { echo "usage: $0 TARGET SECONDS   (targets: config, control, midi)" >&2; exit 2; }
[ $# -eq 2 ] || usage
target=$1
seconds=$2
[[ "$seconds" =~ ^[0-9]+$ ]] || usage

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
artifacts=${FUZZ_ARTIFACTS:-$PWD/fuzz-artifacts}
cxx=${FUZZ_CXX:-clang++-14}
max_len=4096  # per target below

case "$target" in
  config)
    srcs=("$root"/src/config/*.cpp "$root"/src/midi/*.cpp "$here/fuzz_config.cpp")  # the loader checks controllers with the MIDI core
    read -r -a libs <<<"$(pkg-config --cflags --libs yaml-cpp)"
    extra_seeds=("$root"/configs/*.yaml)
    ;;
  control)
    srcs=("$root"/src/control/*.cpp "$here/fuzz_control.cpp")
    libs=(-lboost_json)
    extra_seeds=()
    max_len=70000  # beyond the protocol's 64 KiB line limit, so line_too_long is reached too
    ;;
  midi)
    srcs=("$root"/src/midi/*.cpp "$here/fuzz_midi.cpp")
    libs=()
    extra_seeds=()
    ;;
  *) echo "unknown fuzz target '$target'" >&2; usage ;;
esac

command -v "$cxx" >/dev/null || {
  echo "$cxx not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 2
}

work=$(mktemp -d "${TMPDIR:-/tmp}/earshot-fuzz-$target.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "building fuzz-$target with $cxx"
"$cxx" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root/include" "${srcs[@]}" "${libs[@]}" -o "$work/fuzz-$target"

mkdir -p "$work/corpus" "$work/findings"
cp "$here/corpus/$target"/* "$work/corpus/"
[ ${#extra_seeds[@]} -eq 0 ] || cp "${extra_seeds[@]}" "$work/corpus/"

echo "running fuzz-$target for ${seconds}s on $(find "$work/corpus" -type f | wc -l) seeds"
status=0
# -max_len keeps each execution short (4096 bytes, 70000 for control); -timeout turns a hang into a finding; findings are written
# to $work/findings/ (crash-*, timeout-*, oom-*, leak-*).
(cd "$work" && "./fuzz-$target" -max_total_time="$seconds" -max_len="$max_len" -timeout=5 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$work/findings/" corpus >"$work/fuzz.log" 2>&1) || status=$?

grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb)' \
  "$work/fuzz.log" || true

if [ "$status" -ne 0 ] || [ -n "$(ls -A "$work/findings")" ]; then
  mkdir -p "$artifacts"
  cp "$work/fuzz.log" "$artifacts/fuzz-$target.log"
  cp "$work"/findings/* "$artifacts/" 2>/dev/null || true
  tail -n 60 "$work/fuzz.log" >&2
  echo "fuzz-$target: FOUND A PROBLEM (exit $status); log and inputs in $artifacts" >&2
  [ "$status" -ne 0 ] || status=1
  exit "$status"
fi
echo "fuzz-$target: no finding in ${seconds}s"
