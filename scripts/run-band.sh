#!/usr/bin/env bash
# The run command (README quick start): installs what is missing, builds, generates a 30 s band
# (click, drums, bass, vocal), renders it through configs/band-render.yaml and prints the report.
# (`earshot demo`, the live version with a private JACK server, arrives with the daemon.)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
BUILD=${BUILD_DIR:-build}
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" --buildtype=release
ninja -C "$BUILD" >/dev/null

OUT=${OUT_DIR:-$(mktemp -d /tmp/earshot-band.XXXXXX)}
mkdir -p "$OUT"
"$BUILD/src/cli/earshot" generate --out "$OUT/band.wav" --channels 4 --seconds 30 --rate 48000
"$BUILD/src/cli/earshot" render --config configs/band-render.yaml --input "$OUT/band.wav" --out-dir "$OUT"
echo
echo "== $OUT/report.json"
cat "$OUT/report.json"
echo
echo "rendered mixes: $(ls "$OUT"/*.wav | grep -v band.wav | tr '\n' ' ')"
