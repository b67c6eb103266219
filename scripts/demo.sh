#!/usr/bin/env bash
# README quick start, first command: installs what is missing, builds, and runs `earshot demo`
# (a private JACK server on the dummy backend when none runs, a generated band, earshotd with
# configs/demo.yaml, a live view of levels and dose; it ends by itself). Extra arguments go to
# `earshot demo` (e.g. --seconds 60).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD=${BUILD_DIR:-build}
if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" --buildtype=release
fi
ninja -C "$BUILD"
exec "$BUILD/src/cli/earshot" demo "$@"
