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
const subsets = ["all", "short"];
const bestHf = (subset) => Math.max(hf[subset].encode.mb_per_s, hf[subset].encodeBatch.mb_per_s);
const result = {
  benchmark: "tokenizer encoding throughput, Qwen3 tokenizer.json, one thread",
  date: new Date().toISOString(), cpu: process.env.CPU, cores: os.cpus().length,
  pinned_with: process.env.PINNED || "not pinned (no taskset)",
  corpus: "tests/reference/tokenizer/corpus.mjs (seeded), as in .cache/tokenizer/golden/encode.jsonl; " +
          "'short' = the strings under 64 KiB (all but the 1 MB ones)",
  fp8lm: ours, huggingface: hf,
  speedup_vs_hf_best: Object.fromEntries(subsets.map((s) => [s, ours[s].mb_per_s / bestHf(s)])),
};
fs.writeFileSync(process.env.BASE + ".json", JSON.stringify(result, null, 2) + "\n");
const row = (name, subset, r) =>
  `| ${name} | ${subset} | ${r.seconds_median.toFixed(3)} | ${r.mb_per_s.toFixed(2)} | ${(r.tokens_per_s / 1e6).toFixed(2)} |`;
const rows = subsets.flatMap((s) => [
  row("fp8lm (`fp8lm tokenize --bench`)", s, ours[s]),
  row("HF tokenizers, one `encode` call per string", s, hf[s].encode),
  row("HF tokenizers, `encodeBatch` of 1024", s, hf[s].encodeBatch),
]);
const md = `# Tokenizer encoding throughput (${result.date.slice(0, 10)}, ${result.cpu})

Qwen3 tokenizer.json. Corpus: the tokenizer test corpus, all ${ours.all.strings} strings
(${(ours.all.bytes / 1e6).toFixed(1)} MB, ${ours.all.tokens} tokens, including seven 1 MB strings) and the
${ours.short.strings} strings under 64 KiB (${(ours.short.bytes / 1e6).toFixed(1)} MB). One thread each
(${result.pinned_with}; HF with RAYON_NUM_THREADS=1); one warm-up pass, then the median of
${ours.passes} passes. Both produce identical ids on this corpus (the tokenizer golden tests).
Made by \`scripts/bench-tokenizer.sh\`.

| implementation | strings | seconds | MB/s | M tokens/s |
|---|---|---|---|---|
${rows.join("\n")}

fp8lm / best HF: **${result.speedup_vs_hf_best.all.toFixed(2)}x** on all strings,
**${result.speedup_vs_hf_best.short.toFixed(2)}x** on the short ones.
First pass over all strings, from a fresh tokenizer (cold BPE cache): fp8lm
${ours.all.first_pass_seconds.toFixed(3)} s, HF ${hf.all.encode.first_pass_seconds.toFixed(3)} s. Both keep a cache of
merged pieces (fp8lm up to 200,000 pieces under 256 bytes, HF tokenizers 10,000 words), so the warm
numbers measure the steady state of a long-running server.
HF: ${hf.implementation}, node ${hf.node}.
`;
fs.writeFileSync(process.env.BASE + ".md", md);
console.log(md);
JS
echo "bench-tokenizer: wrote $base.json and $base.md"
