#!/usr/bin/env bash
# On the GPU machine, one call that validates the branch `gpu-pending` (changes written without a
# GPU) and measures it: build; the GPU tests of what it touches; with --bench, `bench one-batch`
# A/Bs of its knobs on the same build; packs $OUT. ~8 min. Set FP8LM_SOURCE_REVISION first (the
# copy there has no .git).
#   scripts/device-pending.sh [--bench] [--no-tests]   (--no-tests: the GPU tests passed on this code already)
# Now: the flash tests' bounds for P in bf16 (the third launch of AttentionFlashGpu.MatchesTwin
# failed them on 49 shapes: the bounds of split P applied to bf16 P), and the two kept fusions
# against none on the same build (the last call's A/Bs ran with them off after that failure).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-env.sh  # sets $out
bench=0 tests=1
for arg in "$@"; do
  case $arg in --bench) bench=1 ;; --no-tests) tests=0 ;; *) echo "unknown argument: $arg"; exit 2 ;; esac
done
log_gpu
fp8lm_build "" "$SM90A_ONLY" --target fp8lm fp8lm_gpu_tests \
  || { scripts/device-pack.sh; exit 1; }
rc=0
if [ "$tests" = 1 ]; then
  run_gpu_tests gpu-tests-pending.log '*AttentionFlashGpu*' 240  # 90 s ran half of it
  rc=$?
  grep -E "flash prefill" "$out/gpu-tests-pending.log"
fi
if [ "$bench" = 1 ]; then
  export FP8LM_RUN_TIMEOUT=120  # a hung kernel costs two minutes, not the call
  # The A/Bs run at the defaults even when a test failed (a failed bound is not a hang; hangs
  # cost FP8LM_RUN_TIMEOUT): exporting a knob here voided two A/Bs of this script's "default".
  scripts/device-ab.sh fusions 128 1 FP8LM_DECODE_FUSION=none default -- qwen3-8b qwen3-0.6b
fi
scripts/device-pack.sh
exit "$rc"
