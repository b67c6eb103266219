#!/usr/bin/env bash
# Builds a libFuzzer target with clang (ASan + UBSan) and runs it for SECONDS on a copy of its seed
# corpus. Exits non-zero when the fuzzer finds a crash. Usage: run_fuzz.sh TARGET SECONDS
# Targets: config (the YAML loader).
set -euo pipefail
target=${1:?target}
seconds=${2:-30}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d /tmp/earshot-fuzz-"$target".XXXXXX)
trap 'rm -rf "$work"' EXIT

CXX=${FUZZ_CXX:-clang++-14}
flags=(-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I"$root/include")
case "$target" in
  config)
    srcs=("$root"/src/config/*.cpp "$here/fuzz_config.cpp")
    libs=($(pkg-config --cflags --libs yaml-cpp))
    ;;
  *) echo "unknown fuzz target '$target'" >&2; exit 2 ;;
esac
"$CXX" "${flags[@]}" "${srcs[@]}" "${libs[@]}" -o "$work/fuzz-$target"
mkdir -p "$work/corpus"
cp "$here/corpus/$target"/* "$work/corpus/" 2>/dev/null || true
[ "$target" = config ] && cp "$root"/configs/*.yaml "$work/corpus/"
cd "$work"
# -max_len keeps each run fast; -timeout flags hangs; a crash writes crash-* and exits non-zero.
"./fuzz-$target" -max_total_time="$seconds" -max_len=4096 -timeout=5 -rss_limit_mb=2048 \
  -print_final_stats=1 corpus 2>&1 | tail -n 15
echo "fuzz-$target: no crash in ${seconds}s"
