// Qwen3 tokenizer against Hugging Face tokenizers: ids on the >= 20,000-string corpus, decode,
// round trips, invalid UTF-8 repair, and the incremental detokenizer. See tests/reference/tokenizer/.
#include <map>

#include "../../engine/tokenizer/utf8.h"
#include "tokenizer_test_data.h"

namespace fp8lm {
namespace {

using testing::DataFile;
using testing::Qwen3Tokenizer;
using testing::ReadJsonLines;

constexpr const char* kQwen3TokenizerSha256 = "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4";
constexpr size_t kMinCorpusStrings = 20000;

struct Corpus {
  std::vector<nlohmann::json> records;  // {c, t, ids, nfc?}
  nlohmann::json header;
};
const Corpus& GoldenCorpus() {
  static Corpus corpus = [] {
    Corpus c;
    const std::string path = DataFile("golden/encode.jsonl");
    if (path.empty()) return c;
    c.records = ReadJsonLines(path);
    if (!c.records.empty()) {
      c.header = c.records.front();
      c.records.erase(c.records.begin());
    }
    return c;
  }();
  return corpus;
}

std::string Preview(const std::string& s) {
  std::string p = s.substr(0, 80);
  return nlohmann::json(p).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
         (s.size() > 80 ? "... (" + std::to_string(s.size()) + " bytes)" : "");
}

TEST(TokenizerGolden, CorpusIsTheAgreedOne) {
  const Corpus& c = GoldenCorpus();
  ASSERT_FALSE(c.records.empty());
  EXPECT_EQ(c.header.value("tokenizer_sha256", ""), kQwen3TokenizerSha256);
  EXPECT_EQ(c.header.value("count", 0u), c.records.size());
  EXPECT_GE(c.records.size(), kMinCorpusStrings);
  std::map<std::string, size_t> per_category;
  size_t megabyte_strings = 0;
  for (const auto& r : c.records) {
    ++per_category[r["c"].get<std::string>()];
    if (r["t"].get_ref<const std::string&>().size() >= (1u << 20)) ++megabyte_strings;
  }
  for (const char* category : {"english", "chinese", "japanese", "korean", "arabic", "emoji", "code", "whitespace",
                               "crlf", "numbers", "added_tokens", "normalization"}) {
    EXPECT_GE(per_category[category], 100u) << category;
  }
  EXPECT_GE(megabyte_strings, 3u);
}

TEST(TokenizerGolden, EncodeMatchesHuggingFaceOnCorpus) {
  const Tokenizer* tok = Qwen3Tokenizer();
  ASSERT_NE(tok, nullptr);
  const Corpus& c = GoldenCorpus();
  ASSERT_GE(c.records.size(), kMinCorpusStrings);
  size_t matched = 0;
  std::map<std::string, size_t> mismatches;
  for (const auto& r : c.records) {
    const std::string& text = r["t"].get_ref<const std::string&>();
    const auto expected = r["ids"].get<std::vector<TokenId>>();
    std::vector<TokenId> ids;
    const Status s = tok->Encode(text, &ids);
    ASSERT_TRUE(s.ok()) << s.message();
    if (ids == expected) {
      ++matched;
      continue;
    }
    const std::string category = r["c"].get<std::string>();
    if (mismatches[category]++ < 3) {
      size_t at = 0;
      while (at < ids.size() && at < expected.size() && ids[at] == expected[at]) ++at;
      ADD_FAILURE() << "[" << category << "] " << Preview(text) << "\n  first difference at token " << at << ": got "
                    << (at < ids.size() ? std::to_string(ids[at]) : "end") << ", Hugging Face "
                    << (at < expected.size() ? std::to_string(expected[at]) : "end");
    }
  }
  EXPECT_EQ(matched, c.records.size()) << "strings whose ids match Hugging Face tokenizers";
  std::printf("[ golden ] encode: %zu / %zu corpus strings identical to Hugging Face tokenizers\n", matched,
              c.records.size());
}

TEST(TokenizerGolden, DecodeRoundTripsToNfc) {
  const Tokenizer* tok = Qwen3Tokenizer();
  ASSERT_NE(tok, nullptr);
  const Corpus& c = GoldenCorpus();
  ASSERT_FALSE(c.records.empty());
  size_t ok = 0, normalized = 0;
  for (const auto& r : c.records) {
    const std::string& text = r["t"].get_ref<const std::string&>();
    const std::string nfc = r.contains("nfc") ? r["nfc"].get<std::string>() : text;  // String.normalize("NFC")
    normalized += r.contains("nfc");
    std::vector<TokenId> ids;
    ASSERT_TRUE(tok->Encode(text, &ids).ok());
    std::string decoded;
    ASSERT_TRUE(tok->Decode(ids, &decoded).ok());
    if (decoded == nfc) {
      ++ok;
    } else {
      ADD_FAILURE() << "decode(encode(s)) != NFC(s) for " << Preview(text);
    }
  }
  EXPECT_EQ(ok, c.records.size());
  EXPECT_GT(normalized, 100u) << "the corpus should contain strings that NFC changes";
}

TEST(TokenizerGolden, DecodeMatchesHuggingFace) {
  const Tokenizer* tok = Qwen3Tokenizer();
  ASSERT_NE(tok, nullptr);
  const std::string path = DataFile("golden/decode.jsonl");
  ASSERT_FALSE(path.empty());
  const auto cases = ReadJsonLines(path);
  ASSERT_GE(cases.size(), 1000u);
  size_t ok = 0, with_replacement = 0;
  for (const auto& c : cases) {
    const auto ids = c["ids"].get<std::vector<TokenId>>();
    const std::string& expected = c["text"].get_ref<const std::string&>();
    std::string text;
    ASSERT_TRUE(tok->Decode(ids, &text, c["skip"].get<bool>()).ok());
    with_replacement += expected.find(utf8::kReplacement) != std::string::npos;
    if (text == expected) {
      ++ok;
    } else if (cases.size() - ok < 5) {
      ADD_FAILURE() << "decode " << c["ids"].dump() << ": got " << Preview(text) << ", expected " << Preview(expected);
    }
  }
  EXPECT_EQ(ok, cases.size());
  EXPECT_GT(with_replacement, 100u) << "the cases should exercise broken UTF-8 (U+FFFD)";
}

TEST(TokenizerGolden, IncrementalDetokenizerNeverBreaksUtf8AndLosesNothing) {
  const Tokenizer* tok = Qwen3Tokenizer();
  ASSERT_NE(tok, nullptr);
  const std::string path = DataFile("golden/decode.jsonl");
  ASSERT_FALSE(path.empty());
  size_t held = 0;
  for (const auto& c : ReadJsonLines(path)) {
    const auto ids = c["ids"].get<std::vector<TokenId>>();
    IncrementalDetokenizer detok(*tok, c["skip"].get<bool>());
    std::string streamed;
    for (TokenId id : ids) {
      std::string chunk;
      ASSERT_TRUE(detok.Push(id, &chunk).ok());
      ASSERT_EQ(utf8::FindInvalid(chunk), std::string::npos) << "emitted broken UTF-8 for " << c["ids"].dump();
      held += detok.pending_bytes() > 0;
      streamed += chunk;
    }
    detok.Finish(&streamed);
    ASSERT_EQ(streamed, c["text"].get<std::string>()) << c["ids"].dump();
  }
  EXPECT_GT(held, 100u) << "the cases should split characters across tokens";
}

TEST(TokenizerGolden, IncrementalDetokenizerOnCorpus) {
  const Tokenizer* tok = Qwen3Tokenizer();
  ASSERT_NE(tok, nullptr);
  const Corpus& c = GoldenCorpus();
  ASSERT_FALSE(c.records.empty());
  for (size_t i = 0; i < c.records.size(); i += 7) {
    const auto& r = c.records[i];
    const auto ids = r["ids"].get<std::vector<TokenId>>();
    if (ids.size() > 4096) continue;
    IncrementalDetokenizer detok(*tok);
    std::string streamed;
    for (TokenId id : ids) ASSERT_TRUE(detok.Push(id, &streamed).ok());
    detok.Finish(&streamed);
    const std::string expected = r.contains("nfc") ? r["nfc"].get<std::string>() : r["t"].get<std::string>();
    ASSERT_EQ(streamed, expected);
  }
}

TEST(TokenizerGolden, InvalidUtf8IsAnErrorByDefault) {
  const Tokenizer* tok = Qwen3Tokenizer();
  ASSERT_NE(tok, nullptr);
  std::vector<TokenId> ids;
  const Status s = tok->Encode(std::string("ok \xE4\xBD then \xFF"), &ids);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not valid UTF-8"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("byte offset 3"), std::string::npos) << s.message();
  EXPECT_TRUE(ids.empty());
}

TEST(TokenizerGolden, InvalidUtf8ReplacementMatchesReference) {
  const Tokenizer* tok = Qwen3Tokenizer();
  ASSERT_NE(tok, nullptr);
  const std::string path = DataFile("golden/invalid_utf8.jsonl");
  ASSERT_FALSE(path.empty());
  const auto cases = ReadJsonLines(path);
  ASSERT_GE(cases.size(), 100u);
  EncodeOptions replace;
  replace.invalid_utf8 = InvalidUtf8::kReplace;
  for (const auto& c : cases) {
    const std::string hex = c["hex"].get<std::string>();
    std::string bytes;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    std::vector<TokenId> ids;
    EXPECT_FALSE(tok->Encode(bytes, &ids).ok()) << hex;
    ids.clear();
    ASSERT_TRUE(tok->Encode(bytes, &ids, replace).ok()) << hex;
    EXPECT_EQ(ids, c["ids"].get<std::vector<TokenId>>()) << "bytes " << hex;
    std::string repaired;
    utf8::AppendLossy(bytes, &repaired);
    EXPECT_EQ(repaired, c["replaced"].get<std::string>()) << "bytes " << hex;
  }
}

// Every Unicode scalar value, in contexts where the regex's view of it (letter, number, space,
// other) changes the pieces: the test that found the Oniguruma / PCRE2 differences.
TEST(TokenizerGolden, EveryCodePointMatchesHuggingFace) {
  const Tokenizer* tok = Qwen3Tokenizer();
  ASSERT_NE(tok, nullptr);
  const std::string path = DataFile("golden/codepoints.jsonl");
  ASSERT_FALSE(path.empty());
  const auto blocks = ReadJsonLines(path);
  ASSERT_EQ(blocks.size(), 0x110000u / 256 - 8) << "one line per 256 code points, surrogates excluded";
  size_t ok = 0;
  for (const auto& b : blocks) {
    const uint32_t first = b["first"].get<uint32_t>();
    std::string text;
    for (uint32_t c = first; c < first + 256; ++c) {
      std::string ch;
      if (c < 0x80) {
        ch = std::string(1, static_cast<char>(c));
      } else if (c < 0x800) {
        ch = {static_cast<char>(0xC0 | (c >> 6)), static_cast<char>(0x80 | (c & 0x3F))};
      } else if (c < 0x10000) {
        ch = {static_cast<char>(0xE0 | (c >> 12)), static_cast<char>(0x80 | ((c >> 6) & 0x3F)),
              static_cast<char>(0x80 | (c & 0x3F))};
      } else {
        ch = {static_cast<char>(0xF0 | (c >> 18)), static_cast<char>(0x80 | ((c >> 12) & 0x3F)),
              static_cast<char>(0x80 | ((c >> 6) & 0x3F)), static_cast<char>(0x80 | (c & 0x3F))};
      }
      text += "a" + ch + "b " + ch + ch + "1 x" + ch + "  " + ch + "\n'" + ch + "s|";
    }
    std::vector<TokenId> ids;
    ASSERT_TRUE(tok->Encode(text, &ids).ok());
    uint32_t h = 0x811c9dc5u;
    for (TokenId id : ids) {
      for (int k = 0; k < 4; ++k) h = (h ^ ((static_cast<uint32_t>(id) >> (8 * k)) & 0xFF)) * 0x01000193u;
    }
    if (ids.size() == b["n"].get<size_t>() && h == b["fnv1a32"].get<uint32_t>()) {
      ++ok;
    } else {
      char range[48];
      std::snprintf(range, sizeof(range), "U+%04X..U+%04X", first, first + 255);
      ADD_FAILURE() << "ids differ from Hugging Face for code points " << range;
    }
  }
  EXPECT_EQ(ok, blocks.size());
}

}  // namespace
}  // namespace fp8lm
