#!/usr/bin/env bash
# On the GPU machine, after fp8lm is built (build/fp8lm): `fp8lm bench one-batch` under several
# settings of the kernels' environment knobs (README, "End to end"), alternating settings per preset
# so that each pair is measured back to back on the same machine. Results go to $OUT tagged with
# the setting and NAME (the result files also record the setting), so that several A/Bs in one call
# keep their files apart.
#   scripts/device-ab.sh NAME OUTPUT_LEN INPUTS SETTING... -- PRESET...
#   e.g. scripts/device-ab.sh stages 128 1,30720 FP8LM_DECODE_MAX_STAGES=4 FP8LM_DECODE_MAX_STAGES=8 -- qwen3-8b qwen3-32b
# A setting is NAME=VALUE, several joined by commas (A=1,B=2), or "default" for none; a setting
# listed again runs again, its files tagged -run2, -run3, ...
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-env.sh  # sets $out
name=${1:?NAME} output_len=${2:?OUTPUT_LEN} inputs=${3:?INPUTS}
shift 3
settings=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do settings+=("$1"); shift; done
[ $# -gt 0 ] && shift
presets=("$@")
[ ${#settings[@]} -gt 0 ] && [ ${#presets[@]} -gt 0 ] || { echo "usage: see the top of $0"; exit 2; }
# Knobs already in the environment apply to every setting that does not set them; the labels say so.
inherited=$(env | grep '^FP8LM_' | grep -v '^FP8LM_SOURCE_REVISION=' | sort | tr '\n' ' ')
[ -z "$inherited" ] || echo "every setting below also has, from the environment: $inherited"
for preset in "${presets[@]}"; do
  declare -A runs=()  # a setting listed twice (to measure the noise) keeps both runs' files
  for setting in "${settings[@]}"; do
    env_args=()
    [ "$setting" = default ] || IFS=, read -r -a env_args <<<"$setting"
    tag=$(echo "$setting" | tr '=,' '--' | tr '[:upper:]' '[:lower:]')
    runs[$tag]=$(( ${runs[$tag]:-0} + 1 ))
    [ "${runs[$tag]}" = 1 ] || tag="$tag-run${runs[$tag]}"
    (for assignment in "${env_args[@]}"; do export "$assignment"; done
     run_one_batch "$preset $setting" "$preset" "$out/ab-$name-$preset-$tag.log" \
      --input-len "$inputs" --output-len "$output_len" --tag "ab-$name-$tag")
  done
done
