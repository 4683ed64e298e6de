#!/bin/bash
# Device call 2: standalone check+timing of every sm90 variant, then the project build, the GPU
# GEMM tests (every config forced) and `fp8lm bench gemm` for two models.
set -o pipefail
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
bash bench/sm90_device_run.sh > $OUT/standalone.txt 2>&1
grep -E "QGMMA|check:|FAIL|device" $OUT/standalone.txt | head -20
export PATH=/usr/local/cuda/bin:$PATH
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=$PWD/.deps/root/usr > $OUT/configure.log 2>&1 || { tail -20 $OUT/configure.log; exit 1; }
cmake --build build --parallel 16 > $OUT/build.log 2>&1 || { grep -A3 error $OUT/build.log | head -40; exit 1; }
echo "built $(date)"
(cd build && timeout 200 ./tests/fp8lm_gpu_tests --gtest_brief=1 2>&1) > $OUT/gputest.log; echo "gpu tests rc=$?"
tail -8 $OUT/gputest.log
echo "tests done $(date)"
timeout 170 build/fp8lm bench gemm --out $OUT --models qwen3-8b,qwen3-0.6b --tag sm90 2>&1 | tail -75
