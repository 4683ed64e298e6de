#!/usr/bin/env bash
# On the GPU machine, after fp8lm is built: how close fp8lm can be expected to come to the
# transformers reference. For each preset: the fp32 reference (what compare-reference checks
# against), the same reference computed in fp64, the distance between the two
# (tests/reference/compare_references.py: the noise floor), and fp8lm's CUDA backend against both.
# Reports go to $OUT (or ./device-out).
#   scripts/device-noise-floor.sh [preset ...]     (default: tiny qwen3-0.6b qwen3-8b)
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-env.sh  # sets $out and $models
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(tiny qwen3-0.6b qwen3-8b)
prompts=${FP8LM_NOISE_PROMPTS:-short,1024}

for preset in "${presets[@]}"; do
  dir=$models/$preset
  rm -rf "$dir"
  build/fp8lm make-checkpoint --preset "$preset" --out "$dir" 2>&1 | tail -1
  for precision in fp32 fp64; do
    python3 tests/reference/qwen3_reference.py --model "$dir" --out "$models/$preset-$precision.safetensors" \
      --prompts "$prompts" --greedy 64 --precision "$precision" 2>&1 | grep -v "^\[reference"
  done
  echo "== $preset: the fp32 reference against the fp64 one (the noise floor)"
  python3 tests/reference/compare_references.py "$models/$preset-fp32.safetensors" "$models/$preset-fp64.safetensors" \
    --json "$out/noise-$preset-fp32-vs-fp64.json"
  for precision in fp32 fp64; do
    echo "== $preset: fp8lm (cuda) against the $precision reference"
    build/fp8lm compare-reference --model "$dir" --reference "$models/$preset-$precision.safetensors" --device cuda \
      --max-context 4096 --report "$out/noise-$preset-fp8lm-vs-$precision.json" 2>&1 | grep -E "^\|"
  done
  rm -rf "$dir" "$models/$preset"-fp*.safetensors
done
