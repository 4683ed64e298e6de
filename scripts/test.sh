#!/usr/bin/env bash
# The tests: install dependencies, build, run every ctest test. Tests labelled `gpu` skip
# (ctest reports them as skipped) when no CUDA device is present.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cd build
ctest --output-on-failure --timeout 1800 "$@"
