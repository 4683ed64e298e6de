#!/bin/bash
# Device call 3: variant timings (compact, in the reply), then the project GPU GEMM tests.
set -o pipefail
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export PATH=/usr/local/cuda/bin:$PATH
nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -DFP8LM_SM90_EXPERIMENTS -Iinclude -Ikernels \
  bench/sm90_standalone.cu kernels/gemm/sm90_blockwise.cu -o sm90_standalone 2> $OUT/ptxas.txt || { cat $OUT/ptxas.txt; exit 1; }
FP8LM_SM90_VERBOSE=1 timeout 200 ./sm90_standalone variants 2>&1 | tee $OUT/variants.txt
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=$PWD/.deps/root/usr > $OUT/configure.log 2>&1 || { tail -20 $OUT/configure.log; exit 1; }
cmake --build build --parallel 16 > $OUT/build.log 2>&1 || { grep -A3 error $OUT/build.log | head -40; exit 1; }
(cd build && timeout 200 ./tests/fp8lm_gpu_tests --gtest_brief=1 2>&1) > $OUT/gputest.log; echo "gpu tests rc=$?"
grep -E "FAILED|PASSED|Failure" $OUT/gputest.log | head -12
grep -oE "^(sm[0-9a-z_]+|auto): out" $OUT/gputest.log | sort | uniq -c
