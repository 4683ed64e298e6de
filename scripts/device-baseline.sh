#!/usr/bin/env bash
# On the GPU machine: builds a baseline source tree (made here with
#   git archive REV -- . ':!bench/results' ':!tests/data' | tar x -C build-base
# and carried as build-base/) and runs `fp8lm bench one-batch` with it, so that a change is timed
# against its baseline on the same machine in the same device call. Results are tagged
# "baseline-<REV>" and go to $OUT with the others.
#   FP8LM_BASELINE_REVISION=REV scripts/device-baseline.sh OUTPUT_LEN INPUTS PRESET...
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/device-env.sh  # sets $out
rev=${FP8LM_BASELINE_REVISION:?set FP8LM_BASELINE_REVISION to the revision of the baseline tree}
output_len=${1:?OUTPUT_LEN} inputs=${2:?INPUTS}
shift 2
[ -d build-base ] || { echo "no build-base/ (see the top of this script)"; exit 2; }
cd build-base
ln -sfn "$root/.deps" .deps
mkdir -p .cache && ln -sfn "$root/.cache/tokenizer" .cache/tokenizer
start=$(date +%s)
export FP8LM_SOURCE_REVISION=$rev  # read at build time (cmake/source_revision.cmake)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DFP8LM_CUDA_GENCODE=-gencode=arch=compute_90a,code=sm_90a >"$out/baseline-configure.log" 2>&1 \
  && cmake --build build --parallel "$(nproc)" --target fp8lm >"$out/baseline-build.log" 2>&1 \
  || { tail -20 "$out/baseline-build.log"; exit 1; }
echo "baseline $rev built: $(( $(date +%s) - start )) s"
for preset in "$@"; do
  build/fp8lm bench one-batch --preset "$preset" --load-format dummy --input-len "$inputs" --output-len "$output_len" \
    --out "$out" --tag "baseline-$rev" >"$out/baseline-$preset.log" 2>&1
  echo "baseline $preset (rc $?):"
  grep -E "speed of light|error" "$out/baseline-$preset.log" | sed 's/^/  /'
done
