#!/usr/bin/env bash
# On the GPU machine, one call that validates the branch `gpu-pending` (changes written without a
# GPU) and measures it: build; the GPU tests of what it touches; with --bench, `bench one-batch` of
# the baseline tree (build-base/, see device-baseline.sh; FP8LM_BASELINE_REVISION) and of this tree
# on the same machine, and the A/B of this branch's knob; packs $OUT. Set FP8LM_SOURCE_REVISION
# first (the copy there has no .git).
#   [FP8LM_BASELINE_REVISION=REV] scripts/device-pending.sh [--bench]
# Now: qk_norm_rope inside the decode attention kernel (AttentionArgs::rope), the gate_up GEMM
# with the SiLU-up quantize in its epilogue at decode (gate_up_swiglu), the o and down GEMMs with
# the residual add + next norm in their last CTA (gemm_add_norm), FP8LM_FLASH_P_SPLIT
# (the wgmma prefill attention with P in bf16), the MoE plan quantizing the experts' input, the
# GEMV's ragged-k fix (Edges tests) and the
# GEMV in a decode step where it wins alone.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-env.sh  # sets $out
bench=0
[ "${1:-}" = --bench ] && bench=1
presets=(qwen3-0.6b qwen3-8b qwen3-32b qwen3-30b-a3b)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
fp8lm_build "" -DFP8LM_CUDA_GENCODE=-gencode=arch=compute_90a,code=sm_90a --target fp8lm fp8lm_gpu_tests \
  || { scripts/device-pack.sh; exit 1; }
start=$(date +%s)
timeout 300 build/tests/fp8lm_gpu_tests \
  --gtest_filter='Attention*:LayerOps*:QkNormRope*:DecodeGraph*:MoeModel*:MoeOps*:GateUpSwiglu*:GemmAddNorm*:GroupedGateUpSwiglu*:Edges/*:*GroupedGemmGpu*' \
  >"$out/gpu-tests-pending.log" 2>&1
rc=$?
tail -3 "$out/gpu-tests-pending.log"
grep -E "^\[  FAILED|Failure" -A4 "$out/gpu-tests-pending.log" | head -40
grep -E "flash prefill" "$out/gpu-tests-pending.log"
echo "gpu tests: rc=$rc, $(( $(date +%s) - start )) s"
if [ "$bench" = 1 ]; then
  [ -n "${FP8LM_BASELINE_REVISION:-}" ] && scripts/device-baseline.sh 128 1,6144 "${presets[@]}"
  for preset in "${presets[@]}"; do
    run_one_batch "$preset" "$preset" "$out/one-batch-$preset.log" --input-len 1,6144 --output-len 128 \
      --tag "out128-$FP8LM_SOURCE_REVISION"
  done
  scripts/device-ab.sh fusion 128 1,6144 FP8LM_DECODE_FUSION=0 default -- "${presets[@]}"
  scripts/device-ab.sh p-split 128 30720 FP8LM_FLASH_P_SPLIT=0 default -- qwen3-8b qwen3-32b
  # The GEMV where it wins alone (<= 9 MB: 0.6B's four GEMMs, 1.7B's qkv and o), in a step.
  scripts/device-ab.sh gemv 128 1 FP8LM_GEMV_MAX_MB=0 FP8LM_GEMV_MAX_MB=9 -- qwen3-0.6b qwen3-1.7b
fi
scripts/device-pack.sh
exit "$rc"
