#!/bin/bash
# Device call 5 (last): standalone check of every sm90 variant on ragged shapes, variant timings,
# project build + GPU tests, `fp8lm bench gemm` (all models), and every config at m = 64, 256.
set -o pipefail
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export PATH=/usr/local/cuda/bin:$PATH
nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -DFP8LM_SM90_EXPERIMENTS -Iinclude -Ikernels \
  bench/sm90_standalone.cu kernels/gemm/sm90_blockwise.cu -o sm90_standalone 2> /tmp/ptxas.txt || { cat /tmp/ptxas.txt; exit 1; }
timeout 90 ./sm90_standalone check > $OUT/check.txt 2>&1; echo "standalone check rc=$?"; grep -E "FAIL|failures" $OUT/check.txt | head -8
timeout 90 ./sm90_standalone variants 2>&1 | tee $OUT/variants.txt | grep -v resident
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=$PWD/.deps/root/usr > /tmp/configure.log 2>&1 || { tail -20 /tmp/configure.log; exit 1; }
cmake --build build --parallel 16 --target fp8lm fp8lm_gpu_tests > /tmp/build.log 2>&1 || { grep -A3 error /tmp/build.log | head -40; exit 1; }
cuobjdump -sass build/fp8lm | grep -oE "QGMMA[.0-9A-Zx]*" | sort | uniq -c
cuobjdump -res-usage build/fp8lm 2>/dev/null | grep -A1 "sm90" | grep -oE "REG:[0-9]+|STACK:[0-9]+|LOCAL:[0-9]+" | sort | uniq -c | tr '\n' ' '; echo
(cd build && timeout 170 ./tests/fp8lm_gpu_tests --gtest_brief=1 2>&1) > $OUT/gputest.log; echo "gpu tests rc=$?"
grep -E "FAILED|PASSED" $OUT/gputest.log | head -6
timeout 150 build/fp8lm bench gemm --out $OUT --tag sm90 > /tmp/bench.log 2>&1; echo "bench rc=$?"
grep -E "ceilings" /tmp/bench.log | cut -c1-200
timeout 150 build/fp8lm bench gemm --out $OUT --tag sm90-allconfigs --m 64,256,512 --all-configs > /tmp/bench2.log 2>&1; echo "bench all-configs rc=$?"
