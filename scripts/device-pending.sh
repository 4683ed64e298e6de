#!/usr/bin/env bash
# On the GPU machine, one call that validates the branch `gpu-pending` (changes written without a
# GPU) and measures it: build; the GPU tests of what it touches (attention kernels, MoE ops and
# model, decode graphs, layer ops); with --bench, `bench one-batch` A/B runs for its knobs on the
# same build (FP8LM_FLASH_WGMMA=0 vs default for the prefill attention; FP8LM_DECODE_MAX_STAGES 4
# vs 8; FP8LM_DECODE_CTAS_PER_SM 2, 3, 4; FP8LM_DECODE_L2_PREFETCH 0 vs 1) and one-batch for the
# 30B-A3B (the MoE combine + norm); packs $OUT. ~400 s with --bench. Set FP8LM_SOURCE_REVISION
# first (the copy there has no .git).
#   scripts/device-pending.sh [--bench]
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-env.sh  # sets $out
bench=0
[ "${1:-}" = --bench ] && bench=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
fp8lm_build "" -DFP8LM_CUDA_GENCODE=-gencode=arch=compute_90a,code=sm_90a --target fp8lm fp8lm_gpu_tests \
  || { scripts/device-pack.sh; exit 1; }
echo "HGMMA (bf16 wgmma: the flash_sm90 kernel) in the binary: $(cuobjdump -sass build/fp8lm 2>/dev/null | grep -c HGMMA)"
start=$(date +%s)
build/tests/fp8lm_gpu_tests --gtest_filter='Attention*:LayerOps*:MoeOps*:MoeModel*:DecodeGraph*:RmsNorm*' \
  >"$out/gpu-tests-pending.log" 2>&1
rc=$?
tail -3 "$out/gpu-tests-pending.log"
grep -E "^\[  FAILED|Failure" -A4 "$out/gpu-tests-pending.log" | head -40
grep -E "flash prefill" "$out/gpu-tests-pending.log"
echo "gpu tests: rc=$rc, $(( $(date +%s) - start )) s"
if [ "$bench" = 1 ]; then
  # A failing test still leaves the timings worth having; the wgmma attention is then kept off.
  if [ "$rc" = 0 ]; then
    scripts/device-ab.sh 128 1,30720 FP8LM_FLASH_WGMMA=0 default -- qwen3-8b qwen3-32b
  else
    export FP8LM_FLASH_WGMMA=0
  fi
  scripts/device-ab.sh 128 1,6144 FP8LM_DECODE_MAX_STAGES=4 FP8LM_DECODE_MAX_STAGES=8 -- qwen3-0.6b qwen3-8b
  scripts/device-ab.sh 128 1 FP8LM_DECODE_CTAS_PER_SM=2 default FP8LM_DECODE_CTAS_PER_SM=4 -- qwen3-8b
  scripts/device-ab.sh 128 1,6144 FP8LM_DECODE_L2_PREFETCH=0 default -- qwen3-0.6b qwen3-8b qwen3-32b
  scripts/device-one-batch.sh 128 qwen3-30b-a3b | grep -E "rc|input (1|30720):"
fi
scripts/device-pack.sh
exit "$rc"
