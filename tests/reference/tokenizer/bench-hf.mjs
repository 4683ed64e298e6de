// Hugging Face tokenizers' encoding throughput on a JSONL corpus ({"t": text} per line), one
// thread, measured the way `fp8lm tokenize --bench` measures fp8lm: one warm-up pass, then the
// median of PASSES timed passes. Two ways of calling the library are timed:
//   encode       one awaited Tokenizer.encode per string (includes the node binding's per-call cost)
//   encodeBatch  batches of 1024 strings per call (rayon pinned to one thread by RAYON_NUM_THREADS=1,
//                which the caller must set; scripts/bench-tokenizer.sh also pins the process to one CPU)
// Usage: FP8LM_REFERENCE_NPM=DIR node bench-hf.mjs TOKENIZER_JSON CORPUS_JSONL PASSES OUT_JSON
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { createRequire } from "node:module";

const require = createRequire(path.join(path.resolve(process.env.FP8LM_REFERENCE_NPM ?? "."), "package.json"));
const { Tokenizer } = require("@anush008/tokenizers");
const [tokPath, corpusPath, passesArg, outPath] = process.argv.slice(2);
const passes = Number(passesArg ?? 5);
if (process.env.RAYON_NUM_THREADS !== "1") {
  console.error("bench-hf: set RAYON_NUM_THREADS=1 (one thread, like fp8lm's measurement)");
  process.exit(2);
}
const tok = Tokenizer.fromFile(tokPath);
const texts = [];
for await (const line of readline.createInterface({ input: fs.createReadStream(corpusPath) })) {
  if (!line) continue;
  const j = JSON.parse(line);
  if (typeof j.t === "string") texts.push(j.t);
}
const median = (a) => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)];

async function perString(texts) {
  let tokens = 0;
  for (const t of texts) tokens += (await tok.encode(t, null, { addSpecialTokens: false })).getLength();
  return tokens;
}
async function batched(texts) {
  let tokens = 0;
  for (let i = 0; i < texts.length; i += 1024) {
    for (const e of await tok.encodeBatch(texts.slice(i, i + 1024), { addSpecialTokens: false })) tokens += e.getLength();
  }
  return tokens;
}
// Same subsets as fp8lm's --bench: all strings, and those under 64 KiB.
const SHORT_BYTES = 64 * 1024;
const subsets = { all: texts, short: texts.filter((t) => Buffer.byteLength(t) < SHORT_BYTES) };
const results = {};
for (const [subset, list] of Object.entries(subsets)) {
  let bytes = 0;
  for (const t of list) bytes += Buffer.byteLength(t);
  results[subset] = { strings: list.length, bytes };
  for (const [name, fn] of [["encode", perString], ["encodeBatch", batched]]) {
    const w0 = process.hrtime.bigint();
    const tokens = await fn(list);  // warm-up (cold cache for the first subset)
    const firstPass = Number(process.hrtime.bigint() - w0) / 1e9;
    const times = [];
    for (let p = 0; p < passes; ++p) {
      const t0 = process.hrtime.bigint();
      await fn(list);
      times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    const s = median(times);
    results[subset][name] = { seconds_median: s, first_pass_seconds: firstPass, mb_per_s: bytes / s / 1e6, tokens_per_s: tokens / s, tokens };
    console.log(`HF tokenizers (${name}), 1 thread, ${subset} strings (${list.length}): ${(bytes / 1e6).toFixed(1)} MB, ` +
                `${tokens} tokens in ${s.toFixed(3)} s (median of ${passes}): ${(bytes / s / 1e6).toFixed(2)} MB/s`);
  }
}
const pkg = JSON.parse(fs.readFileSync(require.resolve("@anush008/tokenizers/package.json"), "utf8"));
fs.writeFileSync(outPath, JSON.stringify({
  implementation: "Hugging Face tokenizers (Rust) via @anush008/tokenizers " + pkg.version,
  threads: 1, passes, node: process.version, ...results,
}, null, 2) + "\n");
