#!/usr/bin/env bash
# On the GPU machine, after fp8lm is built (build/fp8lm): the seed's protocol (`fp8lm bench
# one-batch`, dummy weights) for each preset at inputs 1, 6144, 14336 and 30720, results to $OUT.
#   scripts/device-one-batch.sh OUTPUT_LEN [preset ...]   (default: the six dense presets and 30B-A3B)
# OUTPUT_LEN 2048 is the seed's protocol; 128 measures the same ITL in a fraction of the time.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-env.sh  # sets $out
output_len=${1:?OUTPUT_LEN}
shift
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(qwen3-0.6b qwen3-1.7b qwen3-4b qwen3-8b qwen3-14b qwen3-32b qwen3-30b-a3b)
tag=()
[ "$output_len" = 2048 ] || tag=(--tag "out$output_len")
for preset in "${presets[@]}"; do
  run_one_batch "$preset" "$preset" "$out/one-batch-$preset.log" --input-len 1,6144,14336,30720 \
    --output-len "$output_len" "${tag[@]}"
done
