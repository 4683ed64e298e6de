#!/usr/bin/env bash
# Prepares .deps/ for the GPU machine, which has CUDA and CMake but no network and none of Debian's
# -dev packages: downloads the header/static-library packages fp8lm builds against and unpacks them
# into .deps/ (git-ignored). Carry .deps to that machine; scripts/device-check.sh uses it.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(nlohmann-json3-dev libcli11-dev libfmt-dev libfmt9 libgtest-dev libgmock-dev googletest)
mkdir -p .deps/debs
(cd .deps/debs && apt-get download "${packages[@]}" >/dev/null)
for deb in .deps/debs/*.deb; do dpkg-deb -x "$deb" .deps/root; done
echo "device deps unpacked into .deps/root ($(du -sh .deps/root | cut -f1))"
