#!/usr/bin/env bash
# Prepares .deps/ for the GPU machine, which has CUDA and CMake but no network and none of Debian's
# -dev packages: downloads the header/static-library packages fp8lm builds against and unpacks them
# into .deps/ (git-ignored). Carry .deps to that machine; scripts/device-check.sh uses it.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(nlohmann-json3-dev libcli11-dev libfmt-dev libfmt9 libgtest-dev libgmock-dev googletest
          libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3 libicu-dev libicu72
          pkgconf pkgconf-bin libpkgconf3)
mkdir -p .deps/debs
rm -rf .deps/root
(cd .deps/debs && apt-get download "${packages[@]}" >/dev/null)
for deb in .deps/debs/*.deb; do dpkg-deb -x "$deb" .deps/root; done
rm -rf .deps/debs
# Only what the build links dynamically or reads travels (the carry limit is 64 MiB): drop the
# static archives we never link, ICU's other libraries and the docs.
lib=.deps/root/usr/lib/x86_64-linux-gnu
rm -f "$lib"/libicu*.a "$lib"/libpcre2-*.a "$lib"/libicu{i18n,io,test,tu}* "$lib"/libpcre2-{16,32}* "$lib"/libpcre2-posix*
rm -rf .deps/root/usr/share/doc .deps/root/usr/share/man
echo "device deps unpacked into .deps/root ($(du -sh .deps/root | cut -f1))"
