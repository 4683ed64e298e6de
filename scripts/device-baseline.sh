#!/usr/bin/env bash
# On the GPU machine: times a change against its baseline source tree in the same device call,
# alternating the two builds run by run so that drift of the machine falls on both. The baseline
# tree is made here with
#   mkdir -p build-base && git archive REV -- . ':!bench/results' ':!tests/data' | tar x -C build-base
# and carried as build-base/; this tree must be built already (build/fp8lm). For each preset, RUNS
# times: the baseline, then this tree. Results go to $OUT tagged "baseline-<REV>" and
# "change-<FP8LM_SOURCE_REVISION>" (-run2, ... for repeats).
#   FP8LM_BASELINE_REVISION=REV scripts/device-baseline.sh OUTPUT_LEN INPUTS RUNS PRESET...
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/device-env.sh  # sets $out
rev=${FP8LM_BASELINE_REVISION:?set FP8LM_BASELINE_REVISION to the revision of the baseline tree}
change=${FP8LM_SOURCE_REVISION:-unknown}
output_len=${1:?OUTPUT_LEN} inputs=${2:?INPUTS} runs=${3:?RUNS}
shift 3
[ -d build-base ] || { echo "no build-base/ (see the top of this script)"; exit 2; }
[ -x build/fp8lm ] || { echo "no build/fp8lm: build this tree first"; exit 2; }
(
  cd build-base || exit 1
  ln -sfn "$root/.deps" .deps
  mkdir -p .cache && ln -sfn "$root/.cache/tokenizer" .cache/tokenizer
  export FP8LM_SOURCE_REVISION=$rev  # read at build time (cmake/source_revision.cmake)
  fp8lm_build baseline- "$SM90A_ONLY" --target fp8lm
) || exit 1
for preset in "$@"; do
  for run in $(seq 1 "$runs"); do
    suffix=""
    [ "$run" = 1 ] || suffix="-run$run"
    for side in baseline change; do
      tag="change-$change$suffix"
      dir=$root
      if [ "$side" = baseline ]; then tag="baseline-$rev$suffix" dir=$root/build-base; fi
      (cd "$dir" && run_one_batch "$side $preset$suffix" "$preset" "$out/$side-$preset$suffix.log" \
        --input-len "$inputs" --output-len "$output_len" --tag "$tag")
    done
  done
done
