#!/usr/bin/env bash
# On the GPU machine, last in a device command: the device tool brings back at most 8 files from
# $OUT, so everything there goes into one archive, $OUT/results-<time>.tgz (the originals are removed).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-env.sh  # sets $out
[ -n "$(ls -A "$out")" ] || exit 0
name=results-$(date +%H%M%S).tgz
(cd "$out" && tar czf "/tmp/$name" --exclude='results-*.tgz' . && find . -mindepth 1 ! -name 'results-*.tgz' -delete \
  && mv "/tmp/$name" "$name" && echo "packed $out/$name")
