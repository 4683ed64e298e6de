// The tokenizer test corpus: deterministic (seeded PRNG), so nothing large is committed and the
// C++ tests and the benchmark see the same strings as the reference. Every category the
// acceptance criteria name is here; `generateCorpus()` returns [{category, text}].
const SEED = 0x5eed_f8;

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const cp = (...c) => String.fromCodePoint(...c);
const range = (lo, hi) => ({ lo, hi });

const WORDS = (
  "the of and to in is was that for it with as his on be at by had are but from or have an they which one you were " +
  "her all she there would their we him been has when who will more no if out so said what up its about into than " +
  "them can only other new some could time these two may then do first any my now such like our over man me even " +
  "most made after also did many before must through back years where much your way well down should because each " +
  "just those people how too little state good very make world still own see men work long get here between both " +
  "life being under never day same another know while last might us great old year off come since against go came " +
  "right used take three tokenizer inference kernel quantization throughput latency Hopper tensor matrix gradient " +
  "transformer attention softmax embedding vocabulary byte-level merges normalization Unicode"
).split(" ");
const CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'M", "'LL", "'D", "\u2019s", "'x"];
const PUNCT = [".", ",", "!", "?", ";", ":", "...", " -", " —", "(", ")", "\"", "'", "[", "]", "{", "}", "/", "\\", "@", "#", "%", "&", "*", "~", "`", "^", "|", "+", "=", "<", ">", "_", "$", "€", "£", "¥", "§", "¶", "«", "»", "“", "”", "‘", "’"];

// Scripts: code point ranges (all assigned since Unicode 6, so every regex engine agrees on them).
const SCRIPTS = {
  chinese: [range(0x4e00, 0x9fa5)],
  chinese_punct: [range(0x3001, 0x3003), range(0x300c, 0x300f), range(0xff01, 0xff0f), range(0xff1a, 0xff1f)],
  hiragana: [range(0x3041, 0x3096)],
  katakana: [range(0x30a1, 0x30fa), range(0x30fc, 0x30fe)],
  hangul: [range(0xac00, 0xd7a3)],
  hangul_jamo: [range(0x1100, 0x1112), range(0x1161, 0x1175), range(0x11a8, 0x11c2)],
  arabic: [range(0x0621, 0x063a), range(0x0641, 0x064a)],
  arabic_marks: [range(0x064b, 0x0652)],
  arabic_digits: [range(0x0660, 0x0669)],
  cyrillic: [range(0x0410, 0x044f)],
  greek: [range(0x0391, 0x03a9), range(0x03b1, 0x03c9)],
  hebrew: [range(0x05d0, 0x05ea)],
  devanagari: [range(0x0905, 0x0939), range(0x093e, 0x094c)],
  thai: [range(0x0e01, 0x0e30), range(0x0e40, 0x0e46)],
  latin_ext: [range(0x00c0, 0x00ff), range(0x0100, 0x017f)],
  combining: [range(0x0300, 0x036f)],
  emoji: [range(0x1f600, 0x1f64f), range(0x1f300, 0x1f5ff), range(0x1f680, 0x1f6c5), range(0x1f90d, 0x1f93a), range(0x2600, 0x26ff)],
  math: [range(0x2200, 0x22ff), range(0x1d400, 0x1d433)],
  fullwidth: [range(0xff10, 0xff19), range(0xff21, 0xff3a), range(0xff41, 0xff5a)],
  number_forms: [range(0x2160, 0x216f), range(0x2070, 0x2079), range(0x2080, 0x2089), range(0x00b2, 0x00b3), range(0x2460, 0x2473)],
};
const SPACES = [" ", " ", " ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2009", "\u200a", "\u2028", "\u2029", "\u0085", "\u000b", "\u000c", "\u1680", "\u202f", "\u205f", "\u200b", "\ufeff", "\u180e"];
const EMOJI_ZWJ = [
  "👨\u200d👩\u200d👧\u200d👦", "👩\u200d💻", "🏳\ufe0f\u200d🌈", "🧑🏽\u200d🚀", "❤\ufe0f\u200d🔥", "👁\ufe0f\u200d🗨\ufe0f",
  "🇯🇵", "🇺🇸", "🇪🇺", "1\ufe0f\u20e3", "#\ufe0f\u20e3", "👍🏻", "👍🏿", "✌\ufe0f", "🤷\u200d♀\ufe0f", "🏴\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}",
];
const ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|box_end|>", "<|vision_pad|>", "<|image_pad|>",
  "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|repo_name|>", "<|file_sep|>",
  "<tool_response>", "</tool_response>", "<think>", "</think>"];
const ADDED_NEAR_MISSES = ["<|im_start", "<|im_end", "im_end|>", "<|endoftext", "<think", "</think", "<|", "|>", "<<|im_end|>>", "<|IM_END|>", "< think>", "<|im_start|><|im_start|>"];

const CODE = [
  "#include <vector>\nint main(int argc, char** argv) {\n  std::vector<int> v{1, 2, 3};\n  for (auto& x : v) x *= 2;\n  return v.size() > 2 ? 0 : 1;\n}\n",
  "def fib(n: int) -> int:\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n\nprint(fib(30))\n",
  "{\n  \"model_type\": \"qwen3\",\n  \"hidden_size\": 4096,\n  \"rope_theta\": 1000000.0,\n  \"torch_dtype\": \"bfloat16\"\n}",
  "<html>\n<head><title>Test &amp; \"quotes\"</title></head>\n<body>\n\t<p class='x'>Hello</p>\n</body>\n</html>\r\n",
  "fn main() {\n    let s: Vec<u8> = b\"bytes\".to_vec();\n    println!(\"{:?} {}\", s, s.len());\n}\n",
  "SELECT id, name FROM users WHERE created_at >= '2024-01-01' AND status <> 'deleted' ORDER BY id DESC LIMIT 10;",
  "    if (x != nullptr && *x >= 0x7fffffff) { throw std::runtime_error(\"overflow\"); }\n",
  "const f = async (a, b) => { await Promise.all([a(), b()]); return a?.b ?? c; };\n",
  "__global__ void k(float* __restrict__ y, const float* x, int n) { int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) y[i] = x[i] * 2.f; }",
  "$ ls -la /usr/local/cuda/bin | grep nvcc && echo \"ok\" || exit 1\n",
  "```python\nimport numpy as np\nx = np.zeros((3, 4), dtype=np.float32)\n```\n",
  "// TODO: fix this\n/* multi-line\n * comment */\n#define MAX(a,b) ((a)>(b)?(a):(b))\n",
];

export function generateCorpus() {
  const rnd = mulberry32(SEED);
  const int = (n) => Math.floor(rnd() * n);
  const pick = (a) => a[int(a.length)];
  const fromRanges = (ranges) => {
    const r = pick(ranges);
    return cp(r.lo + int(r.hi - r.lo + 1));
  };
  const run = (script, lo, hi) => {
    let s = "";
    const n = lo + int(hi - lo + 1);
    for (let i = 0; i < n; ++i) s += fromRanges(SCRIPTS[script]);
    return s;
  };
  const digits = (n) => {
    let s = String(1 + int(9));
    for (let i = 1; i < n; ++i) s += String(int(10));
    return s;
  };
  const word = () => {
    let w = pick(WORDS);
    const r = rnd();
    if (r < 0.1) w = w[0].toUpperCase() + w.slice(1);
    else if (r < 0.13) w = w.toUpperCase();
    if (rnd() < 0.08) w += pick(CONTRACTIONS);
    return w;
  };
  const sentence = (nwords) => {
    let s = "";
    for (let i = 0; i < nwords; ++i) {
      if (i) s += rnd() < 0.93 ? " " : pick(SPACES);
      s += word();
      if (rnd() < 0.12) s += pick(PUNCT);
    }
    return s + pick([".", "!", "?", "", "\n", ".\n\n"]);
  };
  const spaceRun = () => {
    let s = "";
    const n = 1 + int(12);
    for (let i = 0; i < n; ++i) s += pick(SPACES);
    return s;
  };
  const number = () => {
    const r = rnd();
    if (r < 0.5) return digits(1 + int(40));
    if (r < 0.6) return digits(1 + int(6)) + "." + digits(1 + int(8));
    if (r < 0.7) return digits(1 + int(3)) + "," + digits(3) + "," + digits(3);
    if (r < 0.8) return "-" + digits(1 + int(5)) + "e" + pick(["", "-", "+"]) + digits(1 + int(2));
    if (r < 0.9) return "0x" + Array.from({ length: 1 + int(16) }, () => "0123456789abcdefABCDEF"[int(22)]).join("");
    return run(pick(["arabic_digits", "fullwidth", "number_forms"]), 1, 8);
  };
  const nfd = (s) => s.normalize("NFD");
  const pieceOf = (cat) => {
    switch (cat) {
      case "english": return sentence(3 + int(25));
      case "chinese": {
        let s = "";
        for (let i = 0, n = 1 + int(6); i < n; ++i) s += run("chinese", 2, 20) + fromRanges(SCRIPTS.chinese_punct);
        return s;
      }
      case "japanese": {
        let s = "";
        for (let i = 0, n = 2 + int(8); i < n; ++i) s += run(pick(["hiragana", "katakana", "chinese"]), 1, 6);
        return s + pick(["。", "、", "！", "？", ""]);
      }
      case "korean": {
        let s = "";
        for (let i = 0, n = 1 + int(10); i < n; ++i) s += (i ? " " : "") + run("hangul", 1, 5);
        return s + pick([".", "?", ""]);
      }
      case "arabic": {
        let s = "";
        for (let i = 0, n = 1 + int(10); i < n; ++i) {
          s += (i ? " " : "") + run("arabic", 2, 7);
          if (rnd() < 0.3) s += fromRanges(SCRIPTS.arabic_marks);
        }
        return s + pick(["،", "؟", ".", ""]);
      }
      case "other_scripts": {
        const script = pick(["cyrillic", "greek", "hebrew", "devanagari", "thai", "latin_ext"]);
        let s = "";
        for (let i = 0, n = 1 + int(8); i < n; ++i) s += (i ? " " : "") + run(script, 1, 9);
        return s;
      }
      case "emoji": {
        let s = "";
        for (let i = 0, n = 1 + int(8); i < n; ++i) {
          s += rnd() < 0.5 ? pick(EMOJI_ZWJ) : run("emoji", 1, 3);
          if (rnd() < 0.3) s += pick([" ", "", "!", "\u200d", "\ufe0f", word()]);
        }
        return s;
      }
      case "code": return pick(CODE);
      case "whitespace": {
        let s = "";
        for (let i = 0, n = 1 + int(6); i < n; ++i) s += spaceRun() + (rnd() < 0.6 ? word() : pick(PUNCT));
        return s + (rnd() < 0.5 ? spaceRun() : "");
      }
      case "crlf": {
        let s = "";
        for (let i = 0, n = 1 + int(8); i < n; ++i) s += pick(["\r\n", "\n", "\r", "\r\r\n", "\n\r", "\r\n\r\n", " \r\n", "\t\r\n"]) + (rnd() < 0.7 ? sentence(1 + int(5)) : "");
        return s;
      }
      case "numbers": {
        let s = "";
        for (let i = 0, n = 1 + int(6); i < n; ++i) s += (i ? pick([" ", "", "+", "-", "/", ", ", "x"]) : "") + number();
        return s;
      }
      case "added_tokens": {
        let s = "";
        for (let i = 0, n = 1 + int(6); i < n; ++i) {
          s += pick([pick(ADDED), pick(ADDED), pick(ADDED_NEAR_MISSES), sentence(1 + int(4)), "\n", " ", run("chinese", 1, 3)]);
        }
        return s;
      }
      case "normalization": {
        const r = rnd();
        if (r < 0.4) return nfd(run("latin_ext", 1, 12)) + " " + nfd(run("greek", 1, 5));
        if (r < 0.7) return nfd(run("hangul", 1, 8));  // conjoining jamo, NFC recomposes them
        if (r < 0.85) return word() + run("combining", 1, 3) + word();
        return "\u212b\u2126\u00c5 \u0041\u030a e\u0301\u0323 \u1e9b\u0323";  // singletons and reordering
      }
      case "random_unicode": {
        let s = "";
        const scripts = Object.keys(SCRIPTS);
        for (let i = 0, n = 1 + int(20); i < n; ++i) {
          s += rnd() < 0.2 ? pick(SPACES) : run(pick(scripts), 1, 3);
        }
        return s;
      }
      case "random_ascii": {
        let s = "";
        for (let i = 0, n = 1 + int(60); i < n; ++i) s += String.fromCharCode(rnd() < 0.05 ? pick([9, 10, 13]) : 32 + int(95));
        return s;
      }
      case "mixed": {
        const cats = ["english", "chinese", "japanese", "korean", "arabic", "emoji", "numbers", "whitespace", "added_tokens", "code"];
        let s = "";
        for (let i = 0, n = 2 + int(5); i < n; ++i) s += pieceOf(pick(cats)) + pick(["", " ", "\n"]);
        return s;
      }
    }
    throw new Error("unknown category " + cat);
  };

  const counts = {
    english: 3000, chinese: 1500, japanese: 1200, korean: 1000, arabic: 1000, other_scripts: 1000,
    emoji: 1200, code: 600, whitespace: 1500, crlf: 1000, numbers: 1500, added_tokens: 1200,
    normalization: 800, random_unicode: 1500, random_ascii: 1500, mixed: 1500,
  };
  const corpus = [];
  for (const [cat, n] of Object.entries(counts)) {
    for (let i = 0; i < n; ++i) corpus.push({ category: cat, text: pieceOf(cat) });
  }
  // Very long strings (1 MB each): prose, CJK without spaces, one long word, a whitespace desert.
  const MB = 1 << 20;
  const long = (cat, make) => {
    const parts = [];
    for (let bytes = 0; bytes < MB;) {
      const p = make();
      parts.push(p);
      bytes += Buffer.byteLength(p);
    }
    corpus.push({ category: cat, text: parts.join("") });
  };
  long("long_prose", () => sentence(20) + " ");
  long("long_mixed", () => pieceOf("mixed"));
  long("long_cjk", () => run("chinese", 100, 400));
  {
    const letters = [];
    for (let i = 0; i < MB; ++i) letters.push("abcdefghijklmnopqrstuvwxyz"[int(26)]);
    corpus.push({ category: "long_word", text: letters.join("") });
  }
  corpus.push({ category: "long_spaces", text: " ".repeat(MB - 3) + "end" });
  corpus.push({ category: "long_newlines", text: "\r\n".repeat(MB / 4) + "x" + "\n".repeat(MB / 2) });
  corpus.push({ category: "long_digits", text: digits(MB) });
  return corpus;
}
