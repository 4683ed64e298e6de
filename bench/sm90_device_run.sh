#!/bin/bash
# On the GPU machine (H100/H200): build the standalone sm90 check, read the SASS facts, check every
# sm90 configuration (and the experiment-only variants) against the fp64 oracle on ragged shapes,
# then time the variants. Logs under $OUT. The project-level tests and `fp8lm bench gemm` are run
# by scripts/device-check.sh. Usage: bash bench/sm90_device_run.sh
set -o pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PATH=/usr/local/cuda/bin:$PATH
nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -DFP8LM_SM90_EXPERIMENTS -Iinclude -Ikernels -Xptxas -v \
  bench/sm90_standalone.cu kernels/gemm/sm90_blockwise.cu -o sm90_standalone 2> "$OUT/ptxas.txt" || { cat "$OUT/ptxas.txt"; exit 1; }
grep -E "registers|spill" "$OUT/ptxas.txt" | sort | uniq -c
cuobjdump -sass sm90_standalone > /tmp/sass.txt
echo "QGMMA: $(grep -c QGMMA /tmp/sass.txt)  LDL/STL: $(grep -cE 'LDL|STL' /tmp/sass.txt)  UTMALDG: $(grep -c UTMALDG /tmp/sass.txt)"
timeout 120 ./sm90_standalone check > "$OUT/check.txt" 2>&1; echo "check rc=$?"; grep -E "FAIL|failures" "$OUT/check.txt"
timeout 300 ./sm90_standalone variants 2>&1 | tee "$OUT/variants.txt"
