// Tokenizer units on small synthetic tokenizer.json files: the loader's errors for every part we do
// not support, merge forms, merge priority, added-token matching, UTF-8 helpers.
#include <thread>

#include "../../engine/tokenizer/byte_level.h"
#include "../../engine/tokenizer/utf8.h"
#include "tokenizer_test_data.h"

namespace fp8lm {
namespace {

using json = nlohmann::json;

// A byte-level BPE file: the 256 byte tokens (ids 0..255), then one token per merge.
json TinyTokenizer(const std::vector<std::pair<std::string, std::string>>& merges, bool pair_form = false) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level::ByteToChars(static_cast<uint8_t>(b))] = b;
  json merge_list = json::array();
  int next = 256;
  for (const auto& [l, r] : merges) {
    if (!vocab.contains(l + r)) vocab[l + r] = next++;
    merge_list.push_back(pair_form ? json::array({l, r}) : json(l + " " + r));
  }
  return json{{"version", "1.0"},
              {"truncation", nullptr},
              {"padding", nullptr},
              {"added_tokens", json::array()},
              {"normalizer", {{"type", "NFC"}}},
              {"pre_tokenizer",
               {{"type", "Sequence"},
                {"pretokenizers",
                 json::array({{{"type", "Split"}, {"pattern", {{"Regex", "\\s+|\\S+"}}}, {"behavior", "Isolated"}, {"invert", false}},
                              {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}}},
              {"post_processor", nullptr},
              {"decoder", {{"type", "ByteLevel"}}},
              {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"vocab", vocab}, {"merges", merge_list}}}};
}

std::unique_ptr<Tokenizer> Load(const json& j, Status* status = nullptr) {
  std::unique_ptr<Tokenizer> tok;
  const Status s = Tokenizer::FromJsonText(j.dump(), "tiny.json", &tok);
  if (status) *status = s;
  return tok;
}

std::string LoadError(const json& j) {
  Status s = Status::Ok();
  auto tok = Load(j, &s);
  return s.ok() ? "(loaded)" : s.message();
}

std::vector<TokenId> Encode(const Tokenizer& tok, std::string_view text, EncodeOptions options = {}) {
  std::vector<TokenId> ids;
  const Status s = tok.Encode(text, &ids, options);
  EXPECT_TRUE(s.ok()) << s.message();
  return ids;
}

TEST(TokenizerLoad, MergeStringAndPairFormsAreTheSame) {
  const std::vector<std::pair<std::string, std::string>> merges = {{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}};
  auto a = Load(TinyTokenizer(merges, false));
  auto b = Load(TinyTokenizer(merges, true));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(Encode(*a, "hello hell"), Encode(*b, "hello hell"));
  EXPECT_EQ(Encode(*a, "hello"), std::vector<TokenId>{*a->TokenToId("hello")});
}

TEST(TokenizerBpe, LowestRankMergesFirstThenLeftmost) {
  auto ab_first = Load(TinyTokenizer({{"a", "b"}, {"b", "c"}}));
  auto bc_first = Load(TinyTokenizer({{"b", "c"}, {"a", "b"}}));
  ASSERT_TRUE(ab_first && bc_first);
  EXPECT_EQ(Encode(*ab_first, "abc"), (std::vector<TokenId>{*ab_first->TokenToId("ab"), *ab_first->TokenToId("c")}));
  EXPECT_EQ(Encode(*bc_first, "abc"), (std::vector<TokenId>{*bc_first->TokenToId("a"), *bc_first->TokenToId("bc")}));
  // Same rank everywhere: leftmost first ("aaa" -> "aa" "a").
  auto aa = Load(TinyTokenizer({{"a", "a"}}));
  ASSERT_TRUE(aa);
  EXPECT_EQ(Encode(*aa, "aaa"), (std::vector<TokenId>{*aa->TokenToId("aa"), *aa->TokenToId("a")}));
  EXPECT_EQ(Encode(*aa, "aaaa"), (std::vector<TokenId>{*aa->TokenToId("aa"), *aa->TokenToId("aa")}));
}

TEST(TokenizerBpe, IgnoreMergesTakesWholeVocabularyPieces) {
  json j = TinyTokenizer({{"a", "b"}});
  j["model"]["vocab"]["abc"] = 400;  // reachable only as a whole piece
  auto merging = Load(j);
  j["model"]["ignore_merges"] = true;
  auto whole = Load(j);
  ASSERT_TRUE(merging && whole);
  EXPECT_EQ(Encode(*merging, "abc"), (std::vector<TokenId>{*merging->TokenToId("ab"), *merging->TokenToId("c")}));
  EXPECT_EQ(Encode(*whole, "abc"), std::vector<TokenId>{400});
  EXPECT_EQ(Encode(*whole, "abcd"), (std::vector<TokenId>{*whole->TokenToId("ab"), *whole->TokenToId("c"), *whole->TokenToId("d")}));
}

TEST(TokenizerBpe, BytesOutsideAsciiUseTheByteAlphabet) {
  auto tok = Load(TinyTokenizer({{"Ã", "©"}}));  // "é" is C3 A9, spelled "Ã©" in the alphabet
  ASSERT_TRUE(tok);
  EXPECT_EQ(Encode(*tok, "é"), std::vector<TokenId>{*tok->TokenToId("Ã©")});
  std::string text;
  ASSERT_TRUE(tok->Decode(Encode(*tok, "é e\u0301"), &text).ok());
  EXPECT_EQ(text, "é é");  // NFC composed the second one
}

TEST(TokenizerLoad, UnsupportedPartsAreNamed) {
  json j = TinyTokenizer({});
  json k;
  k = j; k["model"]["type"] = "WordPiece";
  EXPECT_NE(LoadError(k).find("model.type is \"WordPiece\""), std::string::npos) << LoadError(k);
  k = j; k["model"]["byte_fallback"] = true;
  EXPECT_NE(LoadError(k).find("byte_fallback"), std::string::npos);
  k = j; k["model"]["dropout"] = 0.1;
  EXPECT_NE(LoadError(k).find("dropout"), std::string::npos);
  k = j; k["model"]["continuing_subword_prefix"] = "##";
  EXPECT_NE(LoadError(k).find("continuing_subword_prefix"), std::string::npos);
  k = j; k["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_NE(LoadError(k).find("normalizer \"Lowercase\" is not supported"), std::string::npos) << LoadError(k);
  k = j; k["pre_tokenizer"] = {{"type", "Whitespace"}};
  EXPECT_NE(LoadError(k).find("pre_tokenizer \"Whitespace\" is not supported"), std::string::npos) << LoadError(k);
  k = j; k["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed";
  EXPECT_NE(LoadError(k).find("behavior \"Removed\""), std::string::npos) << LoadError(k);
  k = j; k["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  EXPECT_NE(LoadError(k).find("does not compile"), std::string::npos) << LoadError(k);
  k = j; k["pre_tokenizer"]["pretokenizers"][1]["add_prefix_space"] = true;
  EXPECT_NE(LoadError(k).find("add_prefix_space"), std::string::npos);
  k = j; k["pre_tokenizer"] = j["pre_tokenizer"]["pretokenizers"][0];
  EXPECT_NE(LoadError(k).find("no ByteLevel step"), std::string::npos) << LoadError(k);
  k = j; k["decoder"] = {{"type", "Metaspace"}};
  EXPECT_NE(LoadError(k).find("decoder is \"Metaspace\""), std::string::npos) << LoadError(k);
  k = j; k["post_processor"] = {{"type", "TemplateProcessing"}};
  EXPECT_NE(LoadError(k).find("post_processor \"TemplateProcessing\""), std::string::npos) << LoadError(k);
  k = j; k["truncation"] = {{"max_length", 8}};
  EXPECT_NE(LoadError(k).find("\"truncation\" is set"), std::string::npos);
  k = j; k["added_tokens"] = json::array({{{"id", 300}, {"content", "<x>"}, {"lstrip", true}}});
  EXPECT_NE(LoadError(k).find("added_tokens[0] (\"<x>\") has \"lstrip\": true"), std::string::npos) << LoadError(k);
  k = j; k["model"]["merges"] = json::array({"a zz"});
  EXPECT_NE(LoadError(k).find("\"zz\" is not in model.vocab"), std::string::npos) << LoadError(k);
  k = j; k["model"]["merges"] = json::array({"a b c"});
  EXPECT_NE(LoadError(k).find("merges[0]"), std::string::npos) << LoadError(k);
  k = j; k["model"]["vocab"].erase("Ġ");
  EXPECT_NE(LoadError(k).find("lacks the byte-level token for byte 0x20"), std::string::npos) << LoadError(k);
  k = j; k["model"]["vocab"]["a"] = "one";
  EXPECT_NE(LoadError(k).find("model.vocab[\"a\"] is not a valid id"), std::string::npos) << LoadError(k);
  std::unique_ptr<Tokenizer> tok;
  Status s = Tokenizer::FromJsonText("{\"model\": ", "broken.json", &tok);
  EXPECT_NE(s.message().find("broken.json: not valid JSON"), std::string::npos) << s.message();
  s = Tokenizer::FromFile("/nonexistent/tokenizer.json", &tok);
  EXPECT_NE(s.message().find("cannot open"), std::string::npos) << s.message();
}

TEST(TokenizerAddedTokens, LeftmostLongestAndNormalizedMatching) {
  json j = TinyTokenizer({});
  j["added_tokens"] = json::array({{{"id", 300}, {"content", "<a>"}, {"special", true}},
                                   {{"id", 301}, {"content", "<a><b>"}, {"special", false}},
                                   {{"id", 302}, {"content", "é"}, {"normalized", true}}});
  auto tok = Load(j);
  ASSERT_TRUE(tok);
  EXPECT_EQ(Encode(*tok, "<a><b>"), std::vector<TokenId>{301});
  EXPECT_EQ(Encode(*tok, "<a><a><b>"), (std::vector<TokenId>{300, 301}));
  EXPECT_EQ(Encode(*tok, "xe\u0301"), (std::vector<TokenId>{*tok->TokenToId("x"), 302}));  // matched after NFC
  EncodeOptions plain;
  plain.parse_added_tokens = false;
  EXPECT_EQ(Encode(*tok, "<a>", plain).size(), 3u);
  std::string text;
  ASSERT_TRUE(tok->Decode(std::vector<TokenId>{300, 301, *tok->TokenToId("x")}, &text, /*skip_special_tokens=*/true).ok());
  EXPECT_EQ(text, "<a><b>x");
  EXPECT_TRUE(tok->IsSpecial(300));
  EXPECT_FALSE(tok->IsSpecial(301));
}

TEST(TokenizerDecode, UnknownIdIsAnError) {
  auto tok = Load(TinyTokenizer({}));
  ASSERT_TRUE(tok);
  std::string text;
  const Status s = tok->Decode(std::vector<TokenId>{1, 99999}, &text);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("id 99999 (position 1)"), std::string::npos) << s.message();
  IncrementalDetokenizer detok(*tok);
  EXPECT_FALSE(detok.Push(-1, &text).ok());
}

TEST(TokenizerEncode, EmptyInputGivesNoIds) {
  auto tok = Load(TinyTokenizer({}));
  ASSERT_TRUE(tok);
  EXPECT_TRUE(Encode(*tok, "").empty());
}

TEST(Utf8, MaximalSubpartReplacement) {
  auto lossy = [](std::string_view s) {
    std::string out;
    utf8::AppendLossy(s, &out);
    return out;
  };
  const std::string R(utf8::kReplacement);
  EXPECT_EQ(lossy("a\xF0\x9F\x98"), "a" + R);            // truncated 4-byte: one U+FFFD
  EXPECT_EQ(lossy("\xED\xA0\x80"), R + R + R);           // surrogate: each byte
  EXPECT_EQ(lossy("\xE0\x80\x80"), R + R + R);           // overlong
  EXPECT_EQ(lossy("\xF0\x9F\x98x"), R + "x");            // cut by ASCII
  EXPECT_EQ(lossy("\xC3\xA9\xFF\xC3"), "é" + R + R);
  EXPECT_EQ(lossy("\xF4\x90\x80\x80"), R + R + R + R);   // above U+10FFFF
  EXPECT_EQ(utf8::FindInvalid("ok\xC3\xA9"), std::string_view::npos);
  EXPECT_EQ(utf8::FindInvalid("ok\xC3"), 2u);
  EXPECT_EQ(utf8::CompletePrefix("ab\xE4\xBD"), 2u);
}

TEST(TokenizerQwen3, ParseAddedTokensOffAndThreads) {
  const Tokenizer* tok = testing::Qwen3Tokenizer();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(Encode(*tok, "<|im_end|>"), std::vector<TokenId>{151645});
  EncodeOptions plain;
  plain.parse_added_tokens = false;
  const auto ids = Encode(*tok, "<|im_end|>", plain);
  EXPECT_GT(ids.size(), 1u);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 151645), 0);
  EXPECT_EQ(tok->TokenToId("<|im_end|>"), 151645);
  EXPECT_EQ(tok->vocab_size(), 151669u);
  // Encoding is thread-safe (shared BPE cache): two threads give the single-thread ids.
  std::vector<std::string> texts;
  for (int i = 0; i < 2000; ++i) texts.push_back("thread " + std::to_string(i * 7919) + " 测试 " + std::string(i % 13, ' ') + "x");
  std::vector<std::vector<TokenId>> expected;
  for (const auto& t : texts) expected.push_back(Encode(*tok, t));
  std::vector<int> bad(2, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = 0; i < texts.size(); ++i) {
        std::vector<TokenId> ids;
        if (!tok->Encode(texts[(i + t * 1000) % texts.size()], &ids).ok() || ids != expected[(i + t * 1000) % texts.size()]) ++bad[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad[0] + bad[1], 0);
}

}  // namespace
}  // namespace fp8lm
