#!/usr/bin/env bash
# On the GPU machine, one call that validates the branch `gpu-pending` (changes written without a
# GPU) and measures it: build; the GPU tests of what it touches; with --bench, the measurements
# that decide its defaults, on the same build; packs $OUT. Set FP8LM_SOURCE_REVISION first (the
# copy there has no .git).
#   scripts/device-pending.sh [--bench]
# Now: the GEMV for decode GEMMs of up to 8 tokens (gemv.cu, weights straight into mma fragments)
# and its size threshold
# FP8LM_GEMV_MAX_MB: GEMM and grouped GEMM tests at small m, `bench gemm --all-configs` (GEMV
# against the tensor-core decode kernel per shape), grouped bench with the GEMV off and on, and
# one-batch A/B of the threshold.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-env.sh  # sets $out
bench=0
[ "${1:-}" = --bench ] && bench=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
fp8lm_build "" -DFP8LM_CUDA_GENCODE=-gencode=arch=compute_90a,code=sm_90a --target fp8lm fp8lm_gpu_tests \
  || { scripts/device-pack.sh; exit 1; }
start=$(date +%s)
timeout 300 build/tests/fp8lm_gpu_tests \
  --gtest_filter='*GemmGpu*_m1:*GemmGpu*_m2:*GemmGpu*_m3:*GemmGpu*_m7:*GemmGpu*_m16:Edges/*:*GroupedGemmGpu*:*DecodeGraph*:*MoeModel*' \
  >"$out/gpu-tests-pending.log" 2>&1
rc=$?
tail -3 "$out/gpu-tests-pending.log"
grep -E "^\[  FAILED|Failure" -A4 "$out/gpu-tests-pending.log" | head -40
echo "gpu tests: rc=$rc, $(( $(date +%s) - start )) s"
if [ "$bench" = 1 ]; then
  [ "$rc" = 0 ] || export FP8LM_GEMV_MAX_MB=0  # a failing GEMV stays out of the timings
  build/fp8lm bench gemm --models qwen3-0.6b,qwen3-1.7b,qwen3-4b,qwen3-8b,qwen3-32b --m 1,8 --all-configs \
    --tag gemv-mma --out "$out" >"$out/bench-gemm.log" 2>&1
  echo "bench gemm: rc=$?"
  python3 - "$out" <<'PY'
import glob, json, sys
for f in glob.glob(sys.argv[1] + "/gemm-*-gemv-mma.json"):
    for c in json.load(open(f))["cells"]:
        cfg = c["ours"].get("configs_us", {})
        g, d = cfg.get("gemv_m8n16s2"), cfg.get("sm90dec_m16n64s8")
        if isinstance(g, float) and isinstance(d, float):
            print(f'{c["model"]:12} {c["layer"]:8} m={c["m"]:<2} {c["bytes"]/1e6:7.1f} MB  gemv {g:6.1f} us  '
                  f'decode {d:6.1f} us  floor {c["floor_us"]:5.1f}')
PY
  for mb in 0 1024; do
    FP8LM_GEMV_MAX_MB=$mb build/fp8lm bench gemm --grouped --models qwen3-30b-a3b --m 1 --tag "gemv-mma-max-mb-$mb" \
      --out "$out" >"$out/bench-grouped-$mb.log" 2>&1
    echo "grouped bench, FP8LM_GEMV_MAX_MB=$mb: rc=$?"; grep -E "decode|^\|.*\| 1 \|" "$out/bench-grouped-$mb.log" | head -6
  done
  scripts/device-ab.sh gemv-mma 128 1 FP8LM_GEMV_MAX_MB=0 default FP8LM_GEMV_MAX_MB=64 FP8LM_GEMV_MAX_MB=1024 -- \
    qwen3-0.6b qwen3-1.7b qwen3-8b qwen3-30b-a3b
fi
scripts/device-pack.sh
exit "$rc"
