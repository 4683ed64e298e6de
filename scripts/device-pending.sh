#!/usr/bin/env bash
# On the GPU machine, one call that validates work written without a GPU and measures it: build;
# the GPU tests of what it touches; with --bench, `bench one-batch` A/Bs of its knobs on the same
# build; packs $OUT. ~8 min. Set FP8LM_SOURCE_REVISION first (the copy there has no .git).
#   scripts/device-pending.sh [--bench] [--no-tests]   (--no-tests: the GPU tests passed on this code already)
# Now: one token's MoE routing and plan on one warp (kernels/moe/moe.cu, route_plan_one_kernel):
# the MoE tests; profiles of an 8B and a 30B-A3B decode step at input 1 (scripts/device-profile.sh);
# then 30B-A3B decode at inputs 1 and 30720 with it (the default) against the one-CTA kernel
# (FP8LM_MOE_ROUTE_WARP=0), each setting twice.
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
  run_gpu_tests gpu-tests-pending.log '*Moe*:*DecodeGraph*' 200
  rc=$?
fi
if [ "$bench" = 1 ] && [ "$rc" != 124 ]; then
  export FP8LM_RUN_TIMEOUT=150  # a hung kernel costs that much, not the call
  timeout 150 scripts/device-profile.sh qwen3-8b 1 2 >/dev/null 2>&1
  timeout 150 scripts/device-profile.sh qwen3-30b-a3b 1 2 >/dev/null 2>&1
  head -14 "$out"/profile-qwen3-30b-a3b-1.txt 2>/dev/null
  scripts/device-ab.sh route-warp 128 1,30720 default FP8LM_MOE_ROUTE_WARP=0 default FP8LM_MOE_ROUTE_WARP=0 -- qwen3-30b-a3b
fi
scripts/device-pack.sh
exit "$rc"
