#!/usr/bin/env bash
# Here (not on the GPU machine): the tokenizer files of .cache/tokenizer/qwen3 (scripts/fetch-tokenizer-data.sh),
# gzipped into .carry/ (ignored through .git/info/exclude), for a device call that names `.carry`
# in its carry list; scripts/device-env.sh's unpack_carried_tokenizer puts them back there.
set -euo pipefail
cd "$(dirname "$0")/.."
src=.cache/tokenizer/qwen3
[ -f "$src/tokenizer.json" ] || { echo "$src/tokenizer.json: missing (run scripts/fetch-tokenizer-data.sh)"; exit 1; }
mkdir -p .carry
grep -qx '/.carry/' .git/info/exclude 2>/dev/null || echo '/.carry/' >>.git/info/exclude
gzip -9 -c "$src/tokenizer.json" >.carry/tokenizer.json.gz
cp "$src/tokenizer_config.json" .carry/
du -sh .carry
