#!/usr/bin/env bash
# On the GPU machine, one call that validates work written without a GPU and measures it: build;
# the GPU tests of what it touches; with --bench, `bench one-batch` A/Bs of its knobs on the same
# build; packs $OUT. ~8 min. Set FP8LM_SOURCE_REVISION first (the copy there has no .git).
#   scripts/device-pending.sh [--bench] [--no-tests]   (--no-tests: the GPU tests passed on this code already)
# Now: the grouped decode GEMM reading settled offsets before its wait (Fp8GroupedGemmArgs::
# offsets_settled; the MoE layer sets it) and the NaN-aware routing-weight test: the MoE, grouped
# and decode-graph tests; then 30B-A3B decode at inputs 1 and 30720 with it (the default) against
# waiting first (FP8LM_GROUPED_EARLY_WEIGHTS=0), each setting twice.
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
cuobjdump -res-usage build/fp8lm 2>/dev/null | grep -A1 "sm90_decode_kernelILi16ELb1" | head -4
rc=0
if [ "$tests" = 1 ]; then
  run_gpu_tests gpu-tests-pending.log '*Moe*:*DecodeGraph*:*GroupedGateUpSwiglu*:*SettledOffsets*' 200
  rc=$?
fi
if [ "$bench" = 1 ] && [ "$rc" != 124 ]; then
  export FP8LM_RUN_TIMEOUT=150  # a hung kernel costs that much, not the call
  scripts/device-ab.sh early-weights 128 1,30720 default FP8LM_GROUPED_EARLY_WEIGHTS=0 default \
    FP8LM_GROUPED_EARLY_WEIGHTS=0 -- qwen3-30b-a3b
fi
scripts/device-pack.sh
exit "$rc"
