#!/usr/bin/env bash
# Installs earshot's build and test dependencies from Debian 12's packages (idempotent; needs root
# or sudo). Skips apt entirely when everything is already there.
set -euo pipefail

PKGS=(
  build-essential pkg-config meson ninja-build systemd
  jackd2 libjack-jackd2-dev librtmidi-dev libyaml-cpp-dev catch2
  libboost1.81-dev libboost-program-options1.81-dev libboost-json1.81-dev
  libsystemd-dev libsndfile1-dev
  python3-jack-client python3-numpy sox
  clang-14 libclang-rt-14-dev clang-format chromium
  pipewire pipewire-bin pipewire-jack tmux
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
