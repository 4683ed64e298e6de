#!/usr/bin/env bash
# Tokenizer encoding throughput: fp8lm vs Hugging Face tokenizers (Rust, through its node binding),
# same corpus (the golden corpus of the tokenizer tests, tests/reference/tokenizer/corpus.mjs), same
# machine, one thread each (both processes pinned to one CPU with taskset when it exists).
# Writes bench/results/tokenizer-DATE-CPU.{json,md}. Needs build/fp8lm (scripts/build.sh).
# Usage: scripts/bench-tokenizer.sh [PASSES]   (default 5; the median pass is reported)
set -euo pipefail
cd "$(dirname "$0")/.."
passes=${1:-5}
bin=${FP8LM_BIN:-build/fp8lm}
cache=${FP8LM_TOKENIZER_DATA:-.cache/tokenizer}
[ -x "$bin" ] || { echo "bench-tokenizer: $bin not found; run scripts/build.sh first" >&2; exit 1; }
scripts/fetch-tokenizer-data.sh

cpu=$(grep -m1 "model name" /proc/cpuinfo | sed 's/.*: //')
cpu_slug=$(echo "$cpu" | tr -cs 'A-Za-z0-9' '-' | sed 's/^-*//; s/-*$//')
stamp=$(date -u +%Y-%m-%d)
base="bench/results/tokenizer-$stamp-$cpu_slug"
mkdir -p bench/results
pin=()
command -v taskset >/dev/null 2>&1 && pin=(taskset -c "${FP8LM_BENCH_CPU:-0}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"${pin[@]}" "$bin" tokenize --tokenizer "$cache/qwen3/tokenizer.json" --bench "$cache/golden/encode.jsonl" \
  --bench-passes "$passes" --bench-json "$tmp/fp8lm.json"
RAYON_NUM_THREADS=1 FP8LM_REFERENCE_NPM="$cache/npm" "${pin[@]}" node tests/reference/tokenizer/bench-hf.mjs \
  "$cache/qwen3/tokenizer.json" "$cache/golden/encode.jsonl" "$passes" "$tmp/hf.json"

CPU="$cpu" PINNED="${pin[*]}" BASE="$base" node --input-type=module - "$tmp/fp8lm.json" "$tmp/hf.json" <<'JS'
import fs from "node:fs";
import os from "node:os";
const [ours, hf] = process.argv.slice(2).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
const best = hf.encode.mb_per_s >= hf.encodeBatch.mb_per_s ? "encode" : "encodeBatch";
const result = {
  benchmark: "tokenizer encoding throughput, Qwen3 tokenizer.json, one thread",
  date: new Date().toISOString(), cpu: process.env.CPU, cores: os.cpus().length,
  pinned_with: process.env.PINNED || "not pinned (no taskset)",
  corpus: { strings: ours.strings, bytes: ours.bytes, tokens: ours.tokens,
            source: "tests/reference/tokenizer/corpus.mjs (seeded), as in .cache/tokenizer/golden/encode.jsonl" },
  fp8lm: ours, huggingface: hf,
  speedup_vs_hf_best: ours.mb_per_s / hf[best].mb_per_s,
};
fs.writeFileSync(process.env.BASE + ".json", JSON.stringify(result, null, 2) + "\n");
const row = (name, r) => `| ${name} | ${r.seconds_median.toFixed(3)} | ${r.mb_per_s.toFixed(2)} | ${(r.tokens_per_s / 1e6).toFixed(2)} |`;
const md = `# Tokenizer encoding throughput (${result.date.slice(0, 10)}, ${result.cpu})

Qwen3 tokenizer.json; corpus: ${ours.strings} strings, ${(ours.bytes / 1e6).toFixed(1)} MB, ${ours.tokens} tokens
(the tokenizer test corpus, including seven 1 MB strings); one thread, ${result.pinned_with};
one warm-up pass, median of ${ours.passes} passes. Both produce identical ids on this corpus (the
tokenizer golden tests). Made by \`scripts/bench-tokenizer.sh\`.

| implementation | seconds | MB/s | M tokens/s |
|---|---|---|---|
${row("fp8lm (`fp8lm tokenize --bench`)", ours)}
${row("HF tokenizers, one `encode` call per string", hf.encode)}
${row("HF tokenizers, `encodeBatch` of 1024 (RAYON_NUM_THREADS=1)", hf.encodeBatch)}

fp8lm / best HF: **${result.speedup_vs_hf_best.toFixed(2)}x**. HF: ${hf.implementation}, node ${hf.node}.
`;
fs.writeFileSync(process.env.BASE + ".md", md);
console.log(md);
JS
echo "bench-tokenizer: wrote $base.json and $base.md"
