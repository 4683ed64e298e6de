#!/usr/bin/env bash
# On the GPU machine (H100/H200; issue 7): build, check the grouped GEMM's SASS and resources, run
# the grouped GPU tests, then the dense GEMM GPU tests (the sm90/sm89 kernels gained a grouped
# template variant, so the dense path must still pass), then `fp8lm bench gemm --grouped`.
# Logs and results go to $OUT (or ./device-out). Extra CMake arguments in $FP8LM_CMAKE_ARGS
# (default: sm_90a only, which builds faster on the H100/H200).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/device-out}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv | tee "$out/gpu.txt"

source scripts/device-env.sh
start=$(date +%s)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  ${FP8LM_CMAKE_ARGS:--DFP8LM_CUDA_GENCODE=-gencode=arch=compute_90a,code=sm_90a} >"$out/configure.log" 2>&1 \
  || { tail -30 "$out/configure.log"; exit 1; }
cmake --build build --parallel "$(nproc)" --target fp8lm fp8lm_gpu_tests >"$out/build.log" 2>&1 \
  || { grep -E "error" -A3 "$out/build.log" | head -60; exit 1; }
echo "build: $(( $(date +%s) - start )) s"

# Resources of every GEMM kernel (the grouped variants: GROUPED = true / grouped_gemm_kernel):
# registers, stack (must be 0 for the sm90 kernels), shared memory.
cuobjdump -res-usage build/fp8lm 2>/dev/null | grep -A1 "Function.*gemm\|Function.*decode" \
  | grep -oE "Function [^ ]+|REG:[0-9]+|STACK:[0-9]+|SHARED:[0-9]+|LOCAL:[0-9]+" | paste - - - - - > "$out/resources.txt"
grep -c . "$out/resources.txt"; grep -v "STACK:0" "$out/resources.txt" | head -20

run_tests() {  # $1: log name, $2: gtest filter
  local start=$(date +%s)
  timeout 1500 build/tests/fp8lm_gpu_tests --gtest_filter="$2" > "$out/$1.log" 2>&1
  local rc=$?
  tail -4 "$out/$1.log"
  grep -E "^\[  FAILED|Failure|out of bound|non-finite" "$out/$1.log" | head -40
  echo "$1: rc=$rc, $(( $(date +%s) - start )) s"
}
run_tests gpu-grouped '*GroupedGemmGpu*'
run_tests gpu-gemm-dense 'Qwen3/GemmGpu.*:Edges/GemmGpu.*:GemmGpuArgs.*:*MoeModel*:*Moe*'

build/fp8lm bench gemm --grouped --out "$out" 2>&1 | tee "$out/bench-grouped.log" | tail -12
