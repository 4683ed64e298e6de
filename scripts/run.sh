#!/usr/bin/env bash
# The main job: install dependencies, build, then run fp8lm's default work (`fp8lm selfcheck`:
# the kernels against their CPU twins on this machine, and where a GPU exists, the GEMM benchmark).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
build/fp8lm selfcheck
if build/fp8lm info --gpu-present >/dev/null 2>&1; then
  build/fp8lm bench gemm --out bench/results
fi
