#!/usr/bin/env bash
# On the GPU machine, after scripts/device-check.sh has built fp8lm: the engine against Hugging Face
# transformers. For each preset: write a checkpoint (random weights, official format), compute the
# reference with tests/reference/qwen3_reference.py, and compare the CUDA backend (and, for tiny,
# the CPU backend) with `fp8lm compare-reference`; for the larger presets also the CUDA backend
# against the CPU backend (`fp8lm write-reference --device cpu` on the short prompts). Reports and
# the tiny references (logits, and for tiny every op's input and output:
# tests/cpu/transformers_ops_test.cpp) go to $OUT.
#   scripts/device-engine.sh [preset ...]     (default: tiny qwen3-0.6b; tiny-moe for the MoE path)
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-env.sh  # sets $out and $models
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(tiny qwen3-0.6b)

for preset in "${presets[@]}"; do
  dir=$models/$preset
  rm -rf "$dir"
  build/fp8lm make-checkpoint --preset "$preset" --out "$dir" 2>&1 | tail -1
  if [ "$preset" = tiny ] || [ "$preset" = tiny-moe ]; then  # small enough to commit: CI checks the CPU backend
    ref=$out/$preset-reference.safetensors
    python3 tests/reference/qwen3_reference.py --model "$dir" --out "$ref" --prompts short,64 --greedy 32 --top-k 16 --subset 1024
    [ "$preset" = tiny ] && python3 tests/reference/dump_layer_ops.py --model "$dir" --out "$out/tiny-layer-ops.safetensors"
    build/fp8lm compare-reference --model "$dir" --reference "$ref" --device cpu --report "$out/compare-$preset-cpu.json"
  else
    ref=$models/$preset-reference.safetensors
    python3 tests/reference/qwen3_reference.py --model "$dir" --out "$ref"
    # The CUDA backend against the CPU backend (its twins), through a reference that fp8lm writes on
    # the CPU. Only the short prompt set (21 and 1024 tokens; the Python script is run again just
    # for their ids and subset, --greedy 0): the CPU backend prefills 1024 tokens of 0.6B in a few
    # seconds on 16 cores, but the 8192-token prompt would take minutes (8x the linears, 64x the
    # attention).
    short=$models/$preset-short-prompts.safetensors cpu_ref=$models/$preset-cpu-reference.safetensors
    python3 tests/reference/qwen3_reference.py --model "$dir" --out "$short" --prompts short,1024 --greedy 0
    build/fp8lm write-reference --model "$dir" --device cpu --prompts-from "$short" --out "$cpu_ref" --greedy 64
    build/fp8lm compare-reference --model "$dir" --reference "$cpu_ref" --device cuda --report "$out/compare-$preset-cuda-vs-cpu.json"
    rm -f "$short" "$cpu_ref"
  fi
  build/fp8lm compare-reference --model "$dir" --reference "$ref" --device cuda --max-context 16384 \
    --report "$out/compare-$preset-cuda.json"
  build/fp8lm generate --model "$dir" --prompt "Write a haiku about GPUs." --max-tokens 128 --temperature 0 \
    --ignore-eos --max-context 4096 2>&1 >/dev/null | tail -1
  rm -rf "$dir" "$models/$preset-reference.safetensors"
done
