#!/usr/bin/env bash
# On the GPU machine: build, run every test (GPU ones included), check the SASS, run the self-check
# and the GEMM benchmark. Logs and results go to $OUT (or ./device-out); extra CMake arguments in
# $FP8LM_CMAKE_ARGS (e.g. one -DFP8LM_CUDA_GENCODE=... to build faster). Usage:
#   scripts/device-check.sh [--no-bench | --bench-only] [extra `fp8lm bench gemm` arguments...]
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-env.sh  # sets $out
bench=1 tests=1 target=()
if [ "${1:-}" = "--no-bench" ]; then bench=0; shift; fi
if [ "${1:-}" = "--bench-only" ]; then tests=0 target=(--target fp8lm); shift; fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv | tee "$out/gpu.txt"

fp8lm_build "" "" "${target[@]}" || exit 1

# SASS: the SM89 kernel must use QMMA on sm_89; on sm_90a (emulated FP8 mma) record what it became.
cuobjdump -sass build/fp8lm > "$out/sass.txt" 2>&1
echo "SASS instruction counts per architecture (QMMA = FP8 mma.sync, QGMMA = FP8 wgmma, HMMA = f16/bf16 mma):"
awk '/arch = sm_/{arch=$NF} {for(i=1;i<=NF;i++) if($i ~ /^(QMMA|QGMMA|HMMA|HGMMA)/){split($i,a,"."); n[arch" "a[1]]++}} END{for(k in n) print "  "k": "n[k]}' "$out/sass.txt" | sort
cuobjdump -res-usage build/fp8lm 2>/dev/null | grep -A1 "Function" | grep -oE "Function [^ ]+|REG:[0-9]+|STACK:[0-9]+|SHARED:[0-9]+|LOCAL:[0-9]+" | paste - - - - - > "$out/resources.txt"

if [ "$tests" = 1 ]; then
  build/fp8lm selfcheck 2>&1 | tee "$out/selfcheck.log"
  start=$(date +%s)
  (cd build && ctest --output-on-failure --timeout 1500 2>&1) > "$out/ctest.log"
  rc=$?
  tail -15 "$out/ctest.log"
  grep -E "^\[  FAILED|Failure|rel. Frobenius" "$out/ctest.log" | head -40
  echo "ctest: rc=$rc, $(( $(date +%s) - start )) s"
fi

if [ "$bench" = 1 ]; then
  build/fp8lm bench gemm --out "$out" "$@" 2>&1 | tee "$out/bench.log" | tail -5
fi
