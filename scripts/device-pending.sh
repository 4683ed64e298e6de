#!/usr/bin/env bash
# On the GPU machine, one call that validates the branch `gpu-pending` (changes written without a
# GPU) and measures it: build; the GPU tests of what it touches; with --bench, the measurements
# that decide its defaults, on the same build; packs $OUT. Set FP8LM_SOURCE_REVISION first (the
# copy there has no .git).
#   scripts/device-pending.sh [--bench]
# Now: FP8LM_FLASH_P_SPLIT (the wgmma prefill attention with P in bf16, no P_lo term) and the GEMV
# fix for a ragged k: attention and GEMM edge tests (Prefill30kTimed times the kernel both ways),
# then one-batch A/B of the P split at inputs 1 and 30720.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-env.sh  # sets $out
bench=0
[ "${1:-}" = --bench ] && bench=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
fp8lm_build "" -DFP8LM_CUDA_GENCODE=-gencode=arch=compute_90a,code=sm_90a --target fp8lm fp8lm_gpu_tests \
  || { scripts/device-pack.sh; exit 1; }
start=$(date +%s)
timeout 240 build/tests/fp8lm_gpu_tests --gtest_filter='Attention*:Edges/*:*GroupedGemmGpu*' \
  >"$out/gpu-tests-pending.log" 2>&1
rc=$?
tail -3 "$out/gpu-tests-pending.log"
grep -E "^\[  FAILED|Failure" -A4 "$out/gpu-tests-pending.log" | head -40
grep -E "flash prefill" "$out/gpu-tests-pending.log"
echo "gpu tests: rc=$rc, $(( $(date +%s) - start )) s"
if [ "$bench" = 1 ]; then
  scripts/device-ab.sh p-split 128 1,30720 FP8LM_FLASH_P_SPLIT=0 default -- qwen3-0.6b qwen3-8b qwen3-32b
fi
scripts/device-pack.sh
exit "$rc"
