#!/usr/bin/env bash
# On the GPU machine: builds a baseline source tree (made here with
#   mkdir -p build-base && git archive REV -- . ':!bench/results' ':!tests/data' | tar x -C build-base
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
export FP8LM_SOURCE_REVISION=$rev  # read at build time (cmake/source_revision.cmake)
fp8lm_build baseline- "$SM90A_ONLY" --target fp8lm || exit 1
for preset in "$@"; do
  run_one_batch "baseline $preset" "$preset" "$out/baseline-$preset.log" --input-len "$inputs" \
    --output-len "$output_len" --tag "baseline-$rev"
done
