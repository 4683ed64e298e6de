#!/usr/bin/env bash
# On the GPU machine: the routine of a session's first device call. Builds fp8lm and the GPU tests
# (sm_90a only: faster; CI builds sm_89 too), runs every GPU test except the GEMM configuration
# sweep (GemmGpu.EveryConfigMatchesOracle: 294 cases, ~85 s; run it when a GEMM kernel changed),
# then, with --bench, `fp8lm bench one-batch` at 128 outputs for every preset, and packs $OUT into
# one archive. Set FP8LM_SOURCE_REVISION=<git describe here> first (the copy there has no .git).
#   scripts/device-validate.sh [--bench] [--sweep]
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-env.sh  # sets $out
bench=0 filter='-*GemmGpu.EveryConfigMatchesOracle*'
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    --sweep) filter='*' ;;
    *) echo "unknown argument $arg"; exit 2 ;;
  esac
done
log_gpu
fp8lm_build "" "$SM90A_ONLY" --target fp8lm fp8lm_gpu_tests \
  || { scripts/device-pack.sh; exit 1; }
cuobjdump -res-usage build/fp8lm 2>/dev/null | grep -A1 "Function" \
  | grep -oE "Function [^ ]+|REG:[0-9]+|STACK:[0-9]+|SHARED:[0-9]+|LOCAL:[0-9]+" | paste - - - - - > "$out/resources.txt"
run_gpu_tests gpu-tests.log "$filter"
rc=$?
if [ "$bench" = 1 ] && [ "$rc" = 0 ]; then
  scripts/device-one-batch.sh 128 | grep -E "rc|input (1|30720):"
fi
scripts/device-pack.sh
exit "$rc"
