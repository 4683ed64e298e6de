#!/bin/bash
# One device call: build the standalone sm90 check, read SASS facts, check, time. Logs under $OUT.
set -o pipefail
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem,power.limit --format=csv | tee $OUT/gpu.txt
nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Iinclude -Ikernels -Xptxas -v \
  bench/sm90_standalone.cu kernels/gemm/sm90_blockwise.cu -o sm90_standalone 2> $OUT/ptxas.txt || { cat $OUT/ptxas.txt; exit 1; }
grep -E "registers|spill" $OUT/ptxas.txt | sort | uniq -c | head -20
cuobjdump -sass sm90_standalone > /tmp/sass.txt
echo "QGMMA count: $(grep -c QGMMA /tmp/sass.txt)  LDL/STL: $(grep -cE 'LDL|STL' /tmp/sass.txt)  UTMALDG: $(grep -c UTMALDG /tmp/sass.txt)"
grep -o "QGMMA\.[^ ]*" /tmp/sass.txt | sort | uniq -c
timeout 120 ./sm90_standalone check 2>&1 | tee $OUT/check.txt | grep -v "^ok" ; echo "check rc=$?"
timeout 330 ./sm90_standalone time 2>&1 | tee $OUT/time.txt
