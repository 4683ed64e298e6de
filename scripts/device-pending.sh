#!/usr/bin/env bash
# On the GPU machine, one call that validates the branch `gpu-pending` (changes written without a
# GPU) and measures it: build; the GPU tests of what it touches; with --bench, `bench one-batch`
# A/Bs of its knobs on the same build; packs $OUT. ~8 min. Set FP8LM_SOURCE_REVISION first (the
# copy there has no .git).
#   scripts/device-pending.sh [--bench] [--no-tests]   (--no-tests: the GPU tests passed on this code already)
# Now: the fusions measured slower removed (norm epilogue, router + plan + gathered quantize), the
# GEMV on by default up to 9 MB: every GPU test but the GEMM configuration sweep, then the input-1
# ITL of every preset at the new defaults, the GEMV on 30B-A3B (its o projection, 8 MB, now takes
# it) and the two kept fusions once more on 8B and 30B-A3B.
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
  run_gpu_tests gpu-tests-pending.log '-*GemmGpu.EveryConfigMatchesOracle*' 360
  rc=$?
  grep -E "flash prefill" "$out/gpu-tests-pending.log"
fi
if [ "$bench" = 1 ]; then
  export FP8LM_RUN_TIMEOUT=120  # a hung kernel costs two minutes, not the call
  if [ "$rc" != 0 ]; then
    echo "GPU tests failed: the A/Bs run with FP8LM_DECODE_FUSION=0"
    export FP8LM_DECODE_FUSION=0
  fi
  scripts/device-ab.sh defaults 128 1 default -- qwen3-0.6b qwen3-1.7b qwen3-4b qwen3-8b qwen3-14b qwen3-32b
  scripts/device-ab.sh moe 128 1 default FP8LM_GEMV_MAX_MB=0 FP8LM_DECODE_FUSION=none -- qwen3-30b-a3b
  scripts/device-ab.sh kept-fusions 128 1 FP8LM_DECODE_FUSION=none default -- qwen3-8b
fi
scripts/device-pack.sh
exit "$rc"
