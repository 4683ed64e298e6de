#!/usr/bin/env bash
# On the GPU machine, one call that validates the branch `gpu-pending` (changes written without a
# GPU) and measures it: build; the GPU tests of what it touches; with --bench, `bench one-batch`
# A/Bs of its knobs on the same build; packs $OUT. ~8 min. Set FP8LM_SOURCE_REVISION first (the
# copy there has no .git).
#   scripts/device-pending.sh [--bench] [--no-tests]   (--no-tests: the GPU tests passed on this code already)
# Now: the persistent decode kernel (kernels/decode/decode_layers.cu): its tests against the twin,
# the decode graph and model tests, the GEMM tests (the GEMV's k-block is now shared with it);
# then decode at input 1 with it (FP8LM_DECODE_LAYERS=1; stages of 1, 2 and 4 KB of k per row)
# against the layered path (the default).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-env.sh  # sets $out
bench=0 tests=1
for arg in "$@"; do
  case $arg in --bench) bench=1 ;; --no-tests) tests=0 ;; *) echo "unknown argument: $arg"; exit 2 ;; esac
done
log_gpu
fp8lm_build "" "$SM90A_ONLY" --target fp8lm fp8lm_gpu_tests \
  || { scripts/device-pack.sh; exit 1; }
cuobjdump -res-usage build/fp8lm 2>/dev/null | grep -A1 "decode_layers_kernel" | head -4
cuobjdump -sass build/fp8lm 2>/dev/null | awk '/Function : .*decode_layers_kernel/ {p = 1; print; next} /Function : / {p = 0} p' \
  >"$out/decode-layers-sass.txt"
echo "SASS of decode_layers_kernel: $(wc -l <"$out/decode-layers-sass.txt") lines, $(grep -c HMMA "$out/decode-layers-sass.txt") HMMA," \
  "$(grep -c CCTL "$out/decode-layers-sass.txt") CCTL, $(grep -c LDGSTS "$out/decode-layers-sass.txt") LDGSTS"
rc=0
if [ "$tests" = 1 ]; then
  run_gpu_tests gpu-tests-pending.log '*DecodeLayers*:*DecodeGraph*:*GemmGpu*:*MoeModel*:*GateUpSwiglu*' 240
  rc=$?
  grep -E "decode_layers|model step|CTA 0" "$out/gpu-tests-pending.log" | head -60
  FP8LM_DECODE_LAYERS_STAGE_KB=4 run_gpu_tests gpu-tests-pending-stage-kb4.log 'Shapes/DecodeLayersGpu*' 120
  grep -E "decode_layers|CTA 0" "$out/gpu-tests-pending-stage-kb4.log" | head -40
fi
if [ "$bench" = 1 ] && [ "$rc" != 124 ]; then
  export FP8LM_RUN_TIMEOUT=120  # a hung kernel costs two minutes, not the call
  scripts/device-ab.sh layers 128 1 default FP8LM_DECODE_LAYERS=1 FP8LM_DECODE_LAYERS=1,FP8LM_DECODE_LAYERS_STAGE_KB=2 \
    FP8LM_DECODE_LAYERS=1,FP8LM_DECODE_LAYERS_STAGE_KB=4 -- qwen3-0.6b qwen3-8b
fi
scripts/device-pack.sh
exit "$rc"
