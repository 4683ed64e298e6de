#!/usr/bin/env bash
# The main job: install dependencies, build, check the kernels against their CPU twins
# (`fp8lm selfcheck`), then generate text:
#   - always with the `tiny` preset (a random-weight Qwen3 checkpoint written on the fly into
#     build/tiny-checkpoint, with the real Qwen3 tokenizer), on the GPU if there is one, else the CPU;
#   - with a real checkpoint when one is given: scripts/run.sh /path/to/Qwen3-8B-FP8 ["prompt"].
# On a GPU machine it also runs the GEMM benchmark (results in bench/results/).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-}
prompt=${2:-"Explain in two sentences why FP8 weights make decoding faster."}
scripts/setup.sh
scripts/build.sh
scripts/fetch-tokenizer-data.sh >/dev/null
build/fp8lm selfcheck
build/fp8lm make-checkpoint --preset tiny --out build/tiny-checkpoint
echo "--- tiny preset (random weights: the text is noise; this shows the whole path works)"
build/fp8lm generate --model build/tiny-checkpoint --prompt "$prompt" --max-tokens 32 --temperature 0
if [ -n "$model" ]; then
  echo "--- $model"
  build/fp8lm generate --model "$model" --prompt "$prompt" --max-tokens 256
fi
if build/fp8lm info --gpu-present >/dev/null 2>&1; then
  build/fp8lm bench gemm --out bench/results
fi
