#!/usr/bin/env bash
# On the GPU machine, one call that validates the branch `gpu-pending` (changes written without a
# GPU) and measures it: build; the GPU tests of what it touches; with --bench, `bench one-batch`
# A/Bs of its knobs on the same build; packs $OUT. ~8 min. Set FP8LM_SOURCE_REVISION first (the
# copy there has no .git).
#   scripts/device-pending.sh [--bench]
# Now: the decode fusions (FP8LM_DECODE_FUSION: qk_norm_rope inside the attention kernel, the
# gate_up GEMMs with the SiLU-up quantize, the o and down GEMMs with the residual add + next norm,
# the MoE plan with the gathered quantize), FP8LM_FLASH_P_SPLIT (the wgmma prefill attention with
# P in bf16), the GEMV's ragged-k fix (Edges tests) and the GEMV in a decode step where it wins alone.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-env.sh  # sets $out
bench=0
[ "${1:-}" = --bench ] && bench=1
presets=(qwen3-0.6b qwen3-8b qwen3-32b qwen3-30b-a3b)
log_gpu
fp8lm_build "" "$SM90A_ONLY" --target fp8lm fp8lm_gpu_tests \
  || { scripts/device-pack.sh; exit 1; }
run_gpu_tests gpu-tests-pending.log \
  'Attention*:LayerOps*:QkNormRope*:DecodeGraph*:MoeModel*:MoeOps*:GateUpSwiglu*:GemmAddNorm*:GroupedGateUpSwiglu*:Edges/*:*GroupedGemmGpu*' 240
rc=$?
grep -E "flash prefill" "$out/gpu-tests-pending.log"
if [ "$bench" = 1 ]; then
  export FP8LM_RUN_TIMEOUT=120  # a hung kernel costs two minutes, not the call
  if [ "$rc" != 0 ]; then
    echo "GPU tests failed: the A/Bs run with FP8LM_DECODE_FUSION=0"
    export FP8LM_DECODE_FUSION=0
  fi
  # Every change of the branch has its knob, so one build measures them all (no baseline tree).
  scripts/device-ab.sh fusion 128 1,6144 FP8LM_DECODE_FUSION=0 default -- "${presets[@]}"
  scripts/device-ab.sh p-split 128 30720 FP8LM_FLASH_P_SPLIT=0 default -- qwen3-8b qwen3-32b
  # The GEMV where it wins alone (<= 9 MB: 0.6B's four GEMMs, 1.7B's qkv and o), in a step.
  scripts/device-ab.sh gemv 128 1 FP8LM_GEMV_MAX_MB=0 FP8LM_GEMV_MAX_MB=9 -- qwen3-0.6b qwen3-1.7b
fi
scripts/device-pack.sh
exit "$rc"
