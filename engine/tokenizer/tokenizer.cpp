// Loading tokenizer.json and the encode / decode pipelines (see include/fp8lm/tokenizer.h).
#include "fp8lm/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "bpe.h"
#include "byte_level.h"
#include "pre_tokenizer.h"
#include "utf8.h"

namespace fp8lm {

namespace {

using json = nlohmann::json;

// The GPT-2 split regex that a ByteLevel pre-tokenizer applies when its "use_regex" is true.
constexpr std::string_view kGpt2SplitRegex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string Quoted(std::string_view s) {
  std::string q;
  q.reserve(s.size() + 2);
  q.push_back('"');
  q.append(s);
  q.push_back('"');
  return q;
}

std::string TypeOf(const json& j) {
  if (j.is_object() && j.contains("type") && j["type"].is_string()) return j["type"].get<std::string>();
  return "(no type)";
}

// Leftmost-longest matcher for added tokens, as Hugging Face's AddedVocabulary does with
// aho-corasick (MatchKind::LeftmostLongest). There are few added tokens, so a first-byte filter
// followed by direct comparison (longest candidates first) is enough.
class AddedTokenMatcher {
 public:
  void Add(std::string content, TokenId id) {
    if (content.empty()) return;
    auto& list = by_first_byte_[static_cast<uint8_t>(content[0])];
    list.push_back({std::move(content), id});
    std::stable_sort(list.begin(), list.end(),
                     [](const Entry& a, const Entry& b) { return a.content.size() > b.content.size(); });
    empty_ = false;
  }
  bool empty() const { return empty_; }
  // Finds the leftmost match at or after `from`.
  bool Find(std::string_view text, size_t from, size_t* pos, size_t* len, TokenId* id) const {
    for (size_t i = from; i < text.size(); ++i) {
      const auto& list = by_first_byte_[static_cast<uint8_t>(text[i])];
      if (list.empty()) continue;
      for (const Entry& e : list) {
        if (text.compare(i, e.content.size(), e.content) == 0) {
          *pos = i;
          *len = e.content.size();
          *id = e.id;
          return true;
        }
      }
    }
    return false;
  }

 private:
  struct Entry {
    std::string content;
    TokenId id;
  };
  std::array<std::vector<Entry>, 256> by_first_byte_;
  bool empty_ = true;
};

enum class IdKind : uint8_t { kUnknown, kVocab, kAdded, kSpecial };

}  // namespace

class TokenizerImpl {
 public:
  std::string origin;
  std::vector<std::string> id_bytes;  // what each id decodes to (raw bytes)
  std::vector<IdKind> id_kind;
  std::unordered_map<std::string, TokenId> spelling_to_id;  // vocab keys and added contents
  std::vector<AddedToken> added;
  AddedTokenMatcher raw_matcher;         // added tokens with normalized=false
  AddedTokenMatcher normalized_matcher;  // added tokens with normalized=true
  bool nfc = false;
  std::vector<std::unique_ptr<RegexSplitter>> splitters;
  std::unique_ptr<BpeModel> bpe;

  Status Load(const json& root);
  Status Encode(std::string_view text, std::vector<TokenId>* ids, const EncodeOptions& options) const;

 private:
  Status Error(const std::string& what) const { return Status::Error(origin + ": " + what); }
  Status LoadModel(const json& model);
  Status LoadNormalizer(const json& normalizer);
  Status LoadPreTokenizer(const json& pre_tokenizer, bool* byte_level_seen);
  Status LoadAddedTokens(const json& added_tokens);
  void SetId(TokenId id, std::string bytes, IdKind kind) {
    if (static_cast<size_t>(id) >= id_bytes.size()) {
      id_bytes.resize(id + 1);
      id_kind.resize(id + 1, IdKind::kUnknown);
    }
    id_bytes[id] = std::move(bytes);
    id_kind[id] = kind;
  }
  void SplitAndMerge(size_t level, std::string_view piece, std::vector<TokenId>* ids) const {
    if (level == splitters.size()) {
      bpe->Encode(piece, ids);
      return;
    }
    splitters[level]->Split(piece, [&](std::string_view p) { SplitAndMerge(level + 1, p, ids); });
  }
};

Status TokenizerImpl::Load(const json& root) {
  if (!root.is_object()) return Error("the top level is not a JSON object");
  for (const char* field : {"truncation", "padding"}) {
    if (root.contains(field) && !root[field].is_null()) {
      return Error(std::string("\"") + field +
                   "\" is set; fp8lm does not truncate or pad inside the tokenizer (set it to null)");
    }
  }
  if (!root.contains("model")) return Error("no \"model\" field");
  FP8LM_RETURN_IF_ERROR(LoadModel(root["model"]));
  FP8LM_RETURN_IF_ERROR(LoadNormalizer(root.value("normalizer", json())));
  bool byte_level = false;
  FP8LM_RETURN_IF_ERROR(LoadPreTokenizer(root.value("pre_tokenizer", json()), &byte_level));
  if (!byte_level) {
    return Error("pre_tokenizer has no ByteLevel step; fp8lm supports byte-level BPE files only "
                 "(GPT-2, Qwen2/Qwen3 style)");
  }
  const json decoder = root.value("decoder", json());
  if (TypeOf(decoder) != "ByteLevel") {
    return Error("decoder is " + (decoder.is_null() ? std::string("null") : Quoted(TypeOf(decoder))) +
                 "; fp8lm supports only the \"ByteLevel\" decoder");
  }
  const json post = root.value("post_processor", json());
  if (!post.is_null() && TypeOf(post) != "ByteLevel") {
    return Error("post_processor " + Quoted(TypeOf(post)) +
                 " is not supported (fp8lm supports null or \"ByteLevel\", which add no tokens)");
  }
  return LoadAddedTokens(root.value("added_tokens", json::array()));
}

Status TokenizerImpl::LoadModel(const json& model) {
  if (!model.is_object()) return Error("\"model\" is not an object");
  const std::string type = model.contains("type") ? TypeOf(model) : "BPE";
  if (type != "BPE") return Error("model.type is " + Quoted(type) + "; fp8lm supports only \"BPE\"");
  if (model.contains("dropout") && !model["dropout"].is_null()) {
    return Error("model.dropout is set; BPE dropout (training-time randomness) is not supported");
  }
  for (const char* field : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(field) && !model[field].is_null() &&
        !(model[field].is_string() && model[field].get<std::string>().empty())) {
      return Error(std::string("model.") + field + " is set; fp8lm supports byte-level BPE without it");
    }
  }
  if (model.value("byte_fallback", false)) {
    return Error("model.byte_fallback is true (SentencePiece-style <0xXX> tokens); not supported");
  }
  const bool ignore_merges = model.value("ignore_merges", false);
  if (!model.contains("vocab") || !model["vocab"].is_object()) return Error("model.vocab is not an object");
  if (!model.contains("merges") || !model["merges"].is_array()) return Error("model.merges is not an array");

  const json& vocab = model["vocab"];
  spelling_to_id.reserve(vocab.size() + 64);
  std::unordered_map<std::string, TokenId> whole_ids;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > (1 << 30)) {
      return Error("model.vocab[" + Quoted(it.key()) + "] is not a valid id");
    }
    const auto id = static_cast<TokenId>(it.value().get<int64_t>());
    std::string bytes = byte_level::TokenToBytes(it.key());
    if (ignore_merges) whole_ids.emplace(bytes, id);
    SetId(id, std::move(bytes), IdKind::kVocab);
    spelling_to_id.emplace(it.key(), id);
  }

  std::array<TokenId, 256> byte_ids{};
  for (int b = 0; b < 256; ++b) {
    const std::string spelling = byte_level::ByteToChars(static_cast<uint8_t>(b));
    auto it = spelling_to_id.find(spelling);
    if (it == spelling_to_id.end()) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02X", b);
      return Error(std::string("model.vocab lacks the byte-level token for byte ") + hex + " (" +
                   Quoted(spelling) + "); not a byte-level BPE vocabulary");
    }
    byte_ids[b] = it->second;
  }

  const json& merges = model["merges"];
  MergeTable table;
  table.Reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const json& m = merges[rank];
    std::string left, right;
    if (m.is_string()) {  // "a b"
      const std::string& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        return Error("model.merges[" + std::to_string(rank) + "] = " + Quoted(s) +
                     " is not two tokens separated by one space");
      }
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {  // ["a", "b"]
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      return Error("model.merges[" + std::to_string(rank) + "] is neither \"a b\" nor [\"a\", \"b\"]");
    }
    auto l = spelling_to_id.find(left);
    auto r = spelling_to_id.find(right);
    auto merged = spelling_to_id.find(left + right);
    if (l == spelling_to_id.end() || r == spelling_to_id.end() || merged == spelling_to_id.end()) {
      const std::string missing = l == spelling_to_id.end()   ? left
                                  : r == spelling_to_id.end() ? right
                                                              : left + right;
      return Error("model.merges[" + std::to_string(rank) + "] (" + Quoted(left) + ", " + Quoted(right) +
                   "): " + Quoted(missing) + " is not in model.vocab");
    }
    table.Insert(l->second, r->second, {static_cast<uint32_t>(rank), merged->second});
  }
  bpe = std::make_unique<BpeModel>(byte_ids, std::move(table), ignore_merges, std::move(whole_ids));
  return Status::Ok();
}

Status TokenizerImpl::LoadNormalizer(const json& normalizer) {
  if (normalizer.is_null()) return Status::Ok();
  const std::string type = TypeOf(normalizer);
  if (type == "NFC") {
    nfc = true;
    return Status::Ok();
  }
  if (type == "Sequence" && normalizer.contains("normalizers") && normalizer["normalizers"].is_array()) {
    for (const json& n : normalizer["normalizers"]) FP8LM_RETURN_IF_ERROR(LoadNormalizer(n));
    return Status::Ok();
  }
  return Error("normalizer " + Quoted(type) + " is not supported (fp8lm supports null, \"NFC\" and a "
               "\"Sequence\" of those)");
}

Status TokenizerImpl::LoadPreTokenizer(const json& pt, bool* byte_level_seen) {
  if (pt.is_null()) return Status::Ok();
  const std::string type = TypeOf(pt);
  if (*byte_level_seen) {
    return Error("pre_tokenizer " + Quoted(type) + " follows ByteLevel; fp8lm supports ByteLevel only as "
                 "the last step");
  }
  if (type == "Sequence") {
    if (!pt.contains("pretokenizers") || !pt["pretokenizers"].is_array()) {
      return Error("pre_tokenizer Sequence has no \"pretokenizers\" array");
    }
    for (const json& p : pt["pretokenizers"]) FP8LM_RETURN_IF_ERROR(LoadPreTokenizer(p, byte_level_seen));
    return Status::Ok();
  }
  if (type == "Split") {
    const std::string behavior = pt.value("behavior", std::string());
    if (behavior != "Isolated") {
      return Error("pre_tokenizer Split with behavior " + Quoted(behavior) +
                   " is not supported (fp8lm supports \"Isolated\")");
    }
    if (pt.value("invert", false)) return Error("pre_tokenizer Split with \"invert\": true is not supported");
    const json pattern = pt.value("pattern", json());
    std::unique_ptr<RegexSplitter> splitter;
    if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
      FP8LM_RETURN_IF_ERROR(RegexSplitter::Compile(pattern["Regex"].get<std::string>(), false, &splitter));
    } else if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
      FP8LM_RETURN_IF_ERROR(RegexSplitter::Compile(pattern["String"].get<std::string>(), true, &splitter));
    } else {
      return Error("pre_tokenizer Split has no {\"Regex\": ...} or {\"String\": ...} pattern");
    }
    splitters.push_back(std::move(splitter));
    return Status::Ok();
  }
  if (type == "ByteLevel") {
    if (pt.value("add_prefix_space", false)) {
      return Error("pre_tokenizer ByteLevel with \"add_prefix_space\": true is not supported");
    }
    if (pt.value("use_regex", true)) {
      std::unique_ptr<RegexSplitter> splitter;
      FP8LM_RETURN_IF_ERROR(RegexSplitter::Compile(kGpt2SplitRegex, false, &splitter));
      splitters.push_back(std::move(splitter));
    }
    *byte_level_seen = true;
    return Status::Ok();
  }
  return Error("pre_tokenizer " + Quoted(type) + " is not supported (fp8lm supports Sequence, Split with "
               "behavior Isolated, and ByteLevel)");
}

Status TokenizerImpl::LoadAddedTokens(const json& list) {
  if (!list.is_array()) return Error("\"added_tokens\" is not an array");
  for (size_t i = 0; i < list.size(); ++i) {
    const json& t = list[i];
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || t["id"].get<int64_t>() < 0 ||
        t["id"].get<int64_t>() > (1 << 30) || !t.contains("content") || !t["content"].is_string()) {
      return Error(where + " needs an integer \"id\" and a string \"content\"");
    }
    AddedToken token{static_cast<TokenId>(t["id"].get<int64_t>()), t["content"].get<std::string>(),
                     t.value("special", false), t.value("normalized", false)};
    for (const char* option : {"single_word", "lstrip", "rstrip"}) {
      if (t.value(option, false)) {
        return Error(where + " (" + Quoted(token.content) + ") has \"" + option +
                     "\": true, which fp8lm does not support");
      }
    }
    if (token.content.empty()) return Error(where + " has empty content");
    if (utf8::FindInvalid(token.content) != std::string_view::npos) return Error(where + " is not UTF-8");
    SetId(token.id, byte_level::TokenToBytes(token.content), token.special ? IdKind::kSpecial : IdKind::kAdded);
    spelling_to_id[token.content] = token.id;
    (token.normalized && nfc ? normalized_matcher : raw_matcher).Add(token.content, token.id);
    added.push_back(std::move(token));
  }
  return Status::Ok();
}

Status TokenizerImpl::Encode(std::string_view text, std::vector<TokenId>* ids,
                             const EncodeOptions& options) const {
  std::string repaired;
  if (const size_t bad = utf8::FindInvalid(text); bad != std::string_view::npos) {
    if (options.invalid_utf8 == InvalidUtf8::kError) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02X", static_cast<unsigned char>(text[bad]));
      return Status::Error("input is not valid UTF-8: ill-formed sequence at byte offset " +
                           std::to_string(bad) + " (byte " + hex + ")");
    }
    utf8::AppendLossy(text, &repaired);
    text = repaired;
  }
  std::string scratch;
  // Text between raw added tokens: normalize, match normalized added tokens, split, merge.
  auto encode_segment = [&](std::string_view segment) -> Status {
    if (segment.empty()) return Status::Ok();
    std::string_view normalized = segment;
    if (nfc) FP8LM_RETURN_IF_ERROR(NormalizeNfc(segment, &scratch, &normalized));
    if (!options.parse_added_tokens || normalized_matcher.empty()) {
      SplitAndMerge(0, normalized, ids);
      return Status::Ok();
    }
    size_t pos, len, at = 0;
    TokenId id;
    while (normalized_matcher.Find(normalized, at, &pos, &len, &id)) {
      if (pos > at) SplitAndMerge(0, normalized.substr(at, pos - at), ids);
      ids->push_back(id);
      at = pos + len;
    }
    if (at < normalized.size()) SplitAndMerge(0, normalized.substr(at), ids);
    return Status::Ok();
  };
  if (!options.parse_added_tokens || raw_matcher.empty()) return encode_segment(text);
  size_t pos, len, at = 0;
  TokenId id;
  while (raw_matcher.Find(text, at, &pos, &len, &id)) {
    FP8LM_RETURN_IF_ERROR(encode_segment(text.substr(at, pos - at)));
    ids->push_back(id);
    at = pos + len;
  }
  return encode_segment(text.substr(at));
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

Tokenizer::Tokenizer(std::unique_ptr<TokenizerImpl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

Status Tokenizer::FromJsonText(std::string_view json_text, std::string_view origin,
                               std::unique_ptr<Tokenizer>* out) {
  json root;
  try {
    root = json::parse(json_text.begin(), json_text.end());
  } catch (const json::exception& e) {
    return Status::Error(std::string(origin) + ": not valid JSON: " + e.what());
  }
  auto impl = std::make_unique<TokenizerImpl>();
  impl->origin = std::string(origin);
  try {
    FP8LM_RETURN_IF_ERROR(impl->Load(root));
  } catch (const json::exception& e) {  // a field of the wrong JSON type
    return Status::Error(std::string(origin) + ": unexpected JSON type: " + e.what());
  }
  out->reset(new Tokenizer(std::move(impl)));
  return Status::Ok();
}

Status Tokenizer::FromFile(const std::string& path, std::unique_ptr<Tokenizer>* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(path + ": cannot open the tokenizer file");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (!in.good() && !in.eof()) return Status::Error(path + ": read error");
  return FromJsonText(buffer.str(), path, out);
}

Status Tokenizer::FromModelDir(const std::string& dir, std::unique_ptr<Tokenizer>* out) {
  return FromFile(dir + "/tokenizer.json", out);
}

Status Tokenizer::Encode(std::string_view text, std::vector<TokenId>* ids,
                         const EncodeOptions& options) const {
  return impl_->Encode(text, ids, options);
}

bool Tokenizer::IsValidId(TokenId id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->id_kind.size() && impl_->id_kind[id] != IdKind::kUnknown;
}

bool Tokenizer::IsSpecial(TokenId id) const { return IsValidId(id) && impl_->id_kind[id] == IdKind::kSpecial; }

std::string_view Tokenizer::TokenBytes(TokenId id) const {
  return IsValidId(id) ? std::string_view(impl_->id_bytes[id]) : std::string_view();
}

std::optional<TokenId> Tokenizer::TokenToId(std::string_view token) const {
  auto it = impl_->spelling_to_id.find(std::string(token));
  if (it == impl_->spelling_to_id.end()) return std::nullopt;
  return it->second;
}

size_t Tokenizer::vocab_size() const { return impl_->id_bytes.size(); }

const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added; }

Status Tokenizer::Decode(std::span<const TokenId> ids, std::string* text, bool skip_special_tokens) const {
  std::string bytes;
  for (size_t i = 0; i < ids.size(); ++i) {
    const TokenId id = ids[i];
    if (!IsValidId(id)) {
      return Status::Error("cannot decode id " + std::to_string(id) + " (position " + std::to_string(i) +
                           "): not in the vocabulary of " + impl_->origin);
    }
    if (skip_special_tokens && impl_->id_kind[id] == IdKind::kSpecial) continue;
    bytes += impl_->id_bytes[id];
  }
  text->clear();
  utf8::AppendLossy(bytes, text);
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// IncrementalDetokenizer

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

Status IncrementalDetokenizer::Push(TokenId id, std::string* out) {
  if (!tokenizer_.IsValidId(id)) {
    return Status::Error("cannot decode id " + std::to_string(id) + ": not in the vocabulary");
  }
  if (skip_special_tokens_ && tokenizer_.IsSpecial(id)) return Status::Ok();
  pending_ += tokenizer_.TokenBytes(id);
  // Emit everything up to the first character that is still incomplete; ill-formed subparts are
  // final (more bytes cannot repair them), so they become U+FFFD now.
  size_t i = 0;
  size_t run = 0;
  while (i < pending_.size()) {
    if (static_cast<unsigned char>(pending_[i]) < 0x80) {
      ++i;
      continue;
    }
    const utf8::Step step = utf8::DecodeStep(std::string_view(pending_).substr(i));
    if (step.kind == utf8::Step::kIncomplete) break;
    if (step.kind == utf8::Step::kInvalid) {
      out->append(pending_, run, i - run);
      out->append(utf8::kReplacement);
      i += step.length;
      run = i;
      continue;
    }
    i += step.length;
  }
  out->append(pending_, run, i - run);
  pending_.erase(0, i);
  return Status::Ok();
}

void IncrementalDetokenizer::Finish(std::string* out) {
  utf8::AppendLossy(pending_, out);
  pending_.clear();
}

}  // namespace fp8lm
