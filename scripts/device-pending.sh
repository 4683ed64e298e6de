#!/usr/bin/env bash
# On the GPU machine, one call that validates work written without a GPU and measures it: build;
# the GPU tests of what it touches; with --bench, `bench one-batch` A/Bs of its knobs on the same
# build; packs $OUT. ~8 min. Set FP8LM_SOURCE_REVISION first (the copy there has no .git).
#   scripts/device-pending.sh [--bench] [--no-tests]   (--no-tests: the GPU tests passed on this code already)
# Now: the dense decode GEMM prefetching its whole weight slice into L2 before its wait when the
# GEMM's weights are small enough (FP8LM_DECODE_L2_PREFETCH_MB, off by default): the GEMM edge
# cases, the gate_up and decode-graph tests with it on; then decode at input 1 on 4B, 8B, 30B-A3B
# and 32B: default, prefetch up to 32 MB and up to 64 MB, and the decode ring up to 6 stages.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-env.sh  # sets $out
bench=0 tests=1
for arg in "$@"; do
  case $arg in --bench) bench=1 ;; --no-tests) tests=0 ;; *) echo "unknown argument: $arg"; exit 2 ;; esac
done
unpack_carried_tokenizer
log_gpu
fp8lm_build "" "$SM90A_ONLY" --target fp8lm fp8lm_gpu_tests \
  || { scripts/device-pack.sh; exit 1; }
cuobjdump -res-usage build/fp8lm 2>/dev/null | grep -A1 "sm90_decode_kernelILi16ELb0ELb0" | head -4
rc=0
if [ "$tests" = 1 ]; then
  FP8LM_DECODE_L2_PREFETCH_MB=100000 run_gpu_tests gpu-tests-pending.log \
    'Edges/GemmGpu*:*GateUpSwiglu*:*DecodeGraph*' 200
  rc=$?
fi
if [ "$bench" = 1 ] && [ "$rc" != 124 ]; then
  export FP8LM_RUN_TIMEOUT=150  # a hung kernel costs that much, not the call
  scripts/device-ab.sh l2-prefetch 128 1 default FP8LM_DECODE_L2_PREFETCH_MB=32 FP8LM_DECODE_L2_PREFETCH_MB=64 \
    FP8LM_DECODE_MAX_STAGES=6 -- qwen3-8b qwen3-4b qwen3-30b-a3b qwen3-32b
fi
scripts/device-pack.sh
exit "$rc"
