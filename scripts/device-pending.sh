#!/usr/bin/env bash
# On the GPU machine, one call that validates the branch `gpu-pending` (changes written without a
# GPU) and measures it: build; the GPU tests of what it touches; with --bench, `bench one-batch`
# A/Bs of its knobs on the same build; packs $OUT. ~8 min. Set FP8LM_SOURCE_REVISION first (the
# copy there has no .git).
#   scripts/device-pending.sh [--bench] [--no-tests]   (--no-tests: the GPU tests passed on this code already)
# Now: the decode fusions' slow parts. The add + norm epilogue (168 -> 96 registers, so the next
# kernel's CTAs fit beside the GEMM's), NormQuantizeRow's pass 2 with its loads batched (also the
# unfused rmsnorm_quantize), the router's gathered quantize with its loads batched. Fusion sets
# A/B'd; kernel-by-kernel profiles of 30B-A3B without and with them; the GEMV in a step at 512
# outputs, twice each way (128-output pairs differed by less than their noise).
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
  run_gpu_tests gpu-tests-pending.log \
    'LayerOps*:DecodeGraph*:MoeModel*:MoeOps*:GateUpSwiglu*:GemmAddNorm*:GroupedGateUpSwiglu*:Quant*' 240
  rc=$?
  grep -E "flash prefill" "$out/gpu-tests-pending.log"
fi
if [ "$bench" = 1 ]; then
  export FP8LM_RUN_TIMEOUT=120  # a hung kernel costs two minutes, not the call
  if [ "$rc" != 0 ]; then
    echo "GPU tests failed: the A/Bs run with FP8LM_DECODE_FUSION=0"
    export FP8LM_DECODE_FUSION=0
  fi
  # Every change of the branch has its knob, so one build measures them all (no baseline tree).
  scripts/device-ab.sh fusion-sets 128 1 FP8LM_DECODE_FUSION=none FP8LM_DECODE_FUSION=norm \
    FP8LM_DECODE_FUSION=rope,swiglu FP8LM_DECODE_FUSION=all -- qwen3-8b qwen3-0.6b qwen3-32b
  scripts/device-ab.sh fusion-sets-moe 128 1 FP8LM_DECODE_FUSION=none FP8LM_DECODE_FUSION=router \
    FP8LM_DECODE_FUSION=rope,swiglu,norm FP8LM_DECODE_FUSION=all -- qwen3-30b-a3b
  for setting in none all; do
    FP8LM_DECODE_FUSION=$setting timeout 150 scripts/device-profile.sh qwen3-30b-a3b 1 2 "fusion-$setting" | head -40
  done
  scripts/device-ab.sh gemv-512 512 1 FP8LM_GEMV_MAX_MB=0 FP8LM_GEMV_MAX_MB=9 FP8LM_GEMV_MAX_MB=0 FP8LM_GEMV_MAX_MB=9 \
    -- qwen3-0.6b qwen3-1.7b
fi
scripts/device-pack.sh
exit "$rc"
