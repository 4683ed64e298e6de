// Generates the golden data of fp8lm's tokenizer tests from the reference implementations:
//   encode.jsonl        corpus (corpus.mjs) -> ids from Hugging Face tokenizers (Rust, via
//                       @anush008/tokenizers), plus String.normalize("NFC") where it differs
//   decode.jsonl        random id sequences -> text from Hugging Face tokenizers' decode
//   invalid_utf8.jsonl  ill-formed byte strings -> their WHATWG/U+FFFD repair -> ids
//   codepoints.jsonl    every Unicode scalar value in probe contexts -> digest of the ids
//   chat.json           conversations.json rendered by @huggingface/jinja with the template in the
//                       checkpoint's tokenizer_config.json
// Usage: node make-golden.mjs TOKENIZER_DIR OUT_DIR   (TOKENIZER_DIR holds tokenizer.json and
// tokenizer_config.json). Run by scripts/fetch-tokenizer-data.sh, with FP8LM_REFERENCE_NPM set to
// the folder whose node_modules holds the packages of package.json here.
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { createRequire } from "node:module";
import { generateCorpus } from "./corpus.mjs";

// The npm packages live where scripts/fetch-tokenizer-data.sh installed them ($FP8LM_REFERENCE_NPM).
const require = createRequire(path.join(path.resolve(process.env.FP8LM_REFERENCE_NPM ?? "."), "package.json"));
const { Tokenizer } = require("@anush008/tokenizers");
const { Template } = require("@huggingface/jinja");

const [tokDir, outDir] = process.argv.slice(2);
if (!tokDir || !outDir) {
  console.error("usage: node make-golden.mjs TOKENIZER_DIR OUT_DIR");
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });
const tokPath = path.join(tokDir, "tokenizer.json");
const sha256 = crypto.createHash("sha256").update(fs.readFileSync(tokPath)).digest("hex");
const tok = Tokenizer.fromFile(tokPath);
const tmp = (name) => path.join(outDir, name + ".tmp");
const done = (name) => fs.renameSync(tmp(name), path.join(outDir, name));

// Seeded PRNG for the decode / invalid-UTF-8 cases (the corpus has its own).
let state = 0x1234567;
const rnd = () => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const int = (n) => Math.floor(rnd() * n);

// --- encode -------------------------------------------------------------------------------------
const corpus = generateCorpus();
{
  const fd = fs.openSync(tmp("encode.jsonl"), "w");
  fs.writeSync(fd, JSON.stringify({ tokenizer_sha256: sha256, count: corpus.length }) + "\n");
  for (const { category, text } of corpus) {
    const ids = (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
    const rec = { c: category, t: text, ids };
    const nfc = text.normalize("NFC");
    if (nfc !== text) rec.nfc = nfc;
    fs.writeSync(fd, JSON.stringify(rec) + "\n");
  }
  fs.closeSync(fd);
  done("encode.jsonl");
}

// --- decode -------------------------------------------------------------------------------------
const vocab = JSON.parse(fs.readFileSync(tokPath, "utf8"));
const nVocab = Object.keys(vocab.model.vocab).length;
const addedIds = vocab.added_tokens.map((t) => t.id);
const byteIds = [];  // single-byte tokens: their bytes >= 0x80 make broken UTF-8 on their own
for (const [k, v] of Object.entries(vocab.model.vocab)) if ([...k].length === 1) byteIds.push(v);
{
  const fd = fs.openSync(tmp("decode.jsonl"), "w");
  const sampleIds = (await tok.encode(corpus.slice(0, 2000).map((c) => c.text).join(""))).getIds();
  for (let i = 0; i < 3000; ++i) {
    const ids = [];
    for (let n = 1 + int(30); ids.length < n;) {
      const r = rnd();
      if (r < 0.5) ids.push(int(nVocab));
      else if (r < 0.7) ids.push(byteIds[int(byteIds.length)]);
      else if (r < 0.8) ids.push(addedIds[int(addedIds.length)]);
      else {
        const at = int(sampleIds.length - 8);
        ids.push(...sampleIds.slice(at, at + 1 + int(8)));
      }
    }
    const skip = i % 2 === 1;
    fs.writeSync(fd, JSON.stringify({ ids, skip, text: await tok.decode(ids, skip) }) + "\n");
  }
  fs.closeSync(fd);
  done("decode.jsonl");
}

// --- invalid UTF-8 ------------------------------------------------------------------------------
{
  const fd = fs.openSync(tmp("invalid_utf8.jsonl"), "w");
  for (let i = 0; i < 500; ++i) {
    const parts = [];
    for (let n = 1 + int(8); parts.length < n;) {
      const r = rnd();
      if (r < 0.4) parts.push(Buffer.from(corpus[int(20000)].text.slice(0, 1 + int(20))));
      else if (r < 0.7) parts.push(Buffer.from([0x80 + int(0x80)]));
      else if (r < 0.85) {  // a multi-byte character cut short
        const c = Buffer.from(String.fromCodePoint(0x800 + int(0x10000)));
        parts.push(c.subarray(0, 1 + int(c.length - 1)));
      } else parts.push(Buffer.from([pick([0xc0, 0xc1, 0xe0, 0xed, 0xf0, 0xf4, 0xf5, 0xff]), 0x80 + int(0x40), 0x80 + int(0x40)]));
    }
    const bytes = Buffer.concat(parts);
    const replaced = bytes.toString("utf8");  // WHATWG decode: U+FFFD per maximal subpart
    if (Buffer.from(replaced).equals(bytes)) continue;  // happened to be valid
    const ids = (await tok.encode(replaced, null, { addSpecialTokens: false })).getIds();
    fs.writeSync(fd, JSON.stringify({ hex: bytes.toString("hex"), replaced, ids }) + "\n");
  }
  fs.closeSync(fd);
  done("invalid_utf8.jsonl");
}
function pick(a) {
  return a[int(a.length)];
}

// --- every code point -----------------------------------------------------------------------
// Each Unicode scalar value in probe contexts that expose how the pre-tokenizer regex classifies it
// (letter, number, whitespace, other), 256 code points per string. Only a digest of the ids is
// stored (FNV-1a 32 over the ids, and their count), so the file stays small.
{
  const fd = fs.openSync(tmp("codepoints.jsonl"), "w");
  for (let first = 0; first < 0x110000; first += 256) {
    if (first >= 0xd800 && first < 0xe000) continue;
    let text = "";
    for (let c = first; c < first + 256; ++c) {
      const ch = String.fromCodePoint(c);
      text += `a${ch}b ${ch}${ch}1 x${ch}  ${ch}\n'${ch}s|`;
    }
    const ids = (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
    let h = 0x811c9dc5;
    for (const id of ids) {
      for (let k = 0; k < 4; ++k) h = Math.imul(h ^ ((id >>> (8 * k)) & 0xff), 0x01000193) >>> 0;
    }
    fs.writeSync(fd, JSON.stringify({ first, n: ids.length, fnv1a32: h }) + "\n");
  }
  fs.closeSync(fd);
  done("codepoints.jsonl");
}

// --- chat template ------------------------------------------------------------------------------
{
  const config = JSON.parse(fs.readFileSync(path.join(tokDir, "tokenizer_config.json"), "utf8"));
  const template = new Template(config.chat_template);
  const here = path.dirname(new URL(import.meta.url).pathname);
  const cases = JSON.parse(fs.readFileSync(path.join(here, "conversations.json"), "utf8"));
  const out = [];
  for (const c of cases) {
    const context = { messages: c.messages, add_generation_prompt: c.add_generation_prompt ?? true,
                      bos_token: "", eos_token: config.eos_token };
    if (c.tools !== undefined) context.tools = c.tools;
    if (c.enable_thinking !== undefined) context.enable_thinking = c.enable_thinking;
    out.push({ ...c, prompt: template.render(context) });
  }
  fs.writeFileSync(tmp("chat.json"), JSON.stringify({ template: config.chat_template, cases: out }, null, 1));
  done("chat.json");
}
console.log(`golden data for tokenizer ${sha256.slice(0, 12)}: ${corpus.length} encode strings -> ${outDir}`);
