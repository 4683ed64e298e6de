#!/usr/bin/env bash
# On the GPU machine, one call that validates work written without a GPU and measures it: build;
# the GPU tests of what it touches; with --bench, `bench one-batch` A/Bs of its knobs on the same
# build; packs $OUT. ~8 min. Set FP8LM_SOURCE_REVISION first (the copy there has no .git).
#   scripts/device-pending.sh [--bench] [--no-tests]   (--no-tests: the GPU tests passed on this code already)
# Now: `bench one-batch --kernel-trace` (bench/kernel_trace.h, CUPTI; written without a GPU):
# traces of decode steps at input 1 on 0.6B, 8B, 30B-A3B and 32B and at 30720 on 8B (the
# kernel-trace-*.md files say what each kernel adds to a step with the overlaps of a run); then the
# MoE, decode-graph, attention, layer-op and decode-layers tests, which cover what changed on main
# since the last validated build: a5ad730 (enqueue_layers picks the MLPs' activation buffers once)
# and eb35550 (review mends: make_params, quantize_group_from, flash::attention's dispatch).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-env.sh  # sets $out
bench=0 tests=1
for arg in "$@"; do
  case $arg in --bench) bench=1 ;; --no-tests) tests=0 ;; *) echo "unknown argument: $arg"; exit 2 ;; esac
done
unpack_carried_tokenizer
log_gpu
fp8lm_build "" "$SM90A_ONLY" --target fp8lm fp8lm_gpu_tests \
  || { scripts/device-pack.sh; exit 1; }
cuobjdump -res-usage build/fp8lm 2>/dev/null | grep -A1 "route_plan_one_kernel" | head -4
rc=0
if [ "$tests" = 1 ]; then
  run_gpu_tests gpu-tests-pending.log \
    '*Moe*:*DecodeGraph*:*GroupedGateUpSwiglu*:*SettledOffsets*:*Attention*:*LayerOps*:*DecodeLayers*' 400
  rc=$?
fi
if [ "$bench" = 1 ] && [ "$rc" != 124 ]; then
  export FP8LM_RUN_TIMEOUT=150  # a hung kernel costs that much, not the call
  for preset in qwen3-0.6b qwen3-8b qwen3-30b-a3b qwen3-32b; do
    run_one_batch "$preset trace" "$preset" "$out/trace-$preset.log" --input-len 1 --output-len 12 --kernel-trace 8
    sed -n '/kernel trace/,/^  input/p' "$out/trace-$preset.log" | head -16
  done
  run_one_batch "qwen3-8b trace 30720" qwen3-8b "$out/trace-8b-30720.log" --input-len 30720 --output-len 12 \
    --kernel-trace 8
fi
scripts/device-pack.sh
exit "$rc"
