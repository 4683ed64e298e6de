#!/usr/bin/env bash
# On the GPU machine, one call that validates work written without a GPU and measures it: build;
# the GPU tests of what it touches; with --bench, `bench one-batch` A/Bs of its knobs on the same
# build; packs $OUT. ~8 min. Set FP8LM_SOURCE_REVISION first (the copy there has no .git).
#   scripts/device-pending.sh [--bench] [--no-tests]   (--no-tests: the GPU tests passed on this code already)
# Now (as run at 09a43ab, where greedy decoding on the device passed): its tests and the decode
# graph's, layer ops, MoE model; with --bench, bench one-batch with
# FP8LM_DEVICE_GREEDY=0 (the logits to the host, as before) against the default at inputs 1 and
# 30720, then the README's table (every preset at inputs 1, 6144, 14336 and 30720; 8B and 30B-A3B
# with the seed's 2048 outputs, the others 128).
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
cuobjdump -res-usage build/fp8lm 2>/dev/null | grep -A1 "greedy_token_kernel" | head -4
rc=0
if [ "$tests" = 1 ]; then
  run_gpu_tests gpu-tests-pending.log '*Greedy*:*DecodeGraph*:*LayerOps*:*MoeModel*' 200
  rc=$?
fi
if [ "$bench" = 1 ] && [ "$rc" = 0 ]; then
  export FP8LM_RUN_TIMEOUT=150  # a hung kernel costs that much, not the call
  scripts/device-ab.sh greedy 128 1,30720 FP8LM_DEVICE_GREEDY=0 default -- qwen3-0.6b qwen3-8b qwen3-30b-a3b qwen3-32b
  for preset in qwen3-0.6b qwen3-1.7b qwen3-4b qwen3-8b qwen3-14b qwen3-32b qwen3-30b-a3b; do
    outputs=128
    case $preset in qwen3-8b | qwen3-30b-a3b) outputs=2048 ;; esac
    run_one_batch "$preset" "$preset" "$out/table-$preset.log" --input-len 1,6144,14336,30720 \
      --output-len "$outputs" --tag "table-out$outputs"
  done
fi
scripts/device-pack.sh
exit "$rc"
