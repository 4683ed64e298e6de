// Hugging Face tokenizer.json (byte-level BPE, as used by Qwen2/Qwen3, GPT-2 style checkpoints)
// implemented natively: the ids are those that the `tokenizers` library produces for the same file.
//
// Pipeline of Encode (same order as Hugging Face tokenizers):
//   1. the input is checked to be UTF-8 (EncodeOptions::invalid_utf8 says what happens otherwise);
//   2. added tokens (tokenizer.json "added_tokens") with normalized=false are matched first,
//      leftmost-longest, on the raw text; they map straight to their ids;
//   3. the text between them is normalized (NFC via ICU, if the file asks for it), and added tokens
//      with normalized=true are matched in the normalized text;
//   4. the pre-tokenizer splits the rest with its regex (PCRE2, UTF + UCP + JIT) and maps each piece
//      to bytes (ByteLevel);
//   5. each piece is merged by BPE (merge ranks from "merges", lowest rank first, leftmost first),
//      with a cache of recently seen pieces.
// What tokenizer.json may contain is documented in docs/tokenizer.md; anything else is refused at
// load time with an error naming the field.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fp8lm/status.h"

namespace fp8lm {

using TokenId = int32_t;

enum class InvalidUtf8 {
  kError,    // Encode fails, naming the byte offset of the first ill-formed sequence (default)
  kReplace,  // each maximal ill-formed subpart is replaced by U+FFFD before encoding
};

struct EncodeOptions {
  // Match added tokens (e.g. "<|im_start|>", "<think>") in the text, as Hugging Face tokenizers
  // does by default. When false, their text is encoded as ordinary text.
  bool parse_added_tokens = true;
  InvalidUtf8 invalid_utf8 = InvalidUtf8::kError;
};

struct AddedToken {
  TokenId id;
  std::string content;
  bool special;     // "special": true (skipped by Decode with skip_special_tokens)
  bool normalized;  // matched after normalization
};

class TokenizerImpl;

class Tokenizer {
 public:
  // Loads a tokenizer.json file. Errors name the file and the field that is wrong or unsupported.
  static Status FromFile(const std::string& path, std::unique_ptr<Tokenizer>* out);
  // Loads a checkpoint folder: DIR/tokenizer.json.
  static Status FromModelDir(const std::string& dir, std::unique_ptr<Tokenizer>* out);
  // Loads from JSON text; `origin` names it in error messages.
  static Status FromJsonText(std::string_view json_text, std::string_view origin,
                             std::unique_ptr<Tokenizer>* out);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Appends the ids of `text` to `ids`. Thread-safe.
  Status Encode(std::string_view text, std::vector<TokenId>* ids,
                const EncodeOptions& options = {}) const;

  // Replaces `text` with the decoded text of `ids`. Bytes that do not form valid UTF-8 become
  // U+FFFD (as in Hugging Face tokenizers). An id outside the vocabulary is an error.
  Status Decode(std::span<const TokenId> ids, std::string* text,
                bool skip_special_tokens = false) const;

  // The raw bytes a token stands for (its content for added tokens); empty for an unknown id.
  std::string_view TokenBytes(TokenId id) const;
  bool IsValidId(TokenId id) const;
  bool IsSpecial(TokenId id) const;
  // The id of a vocabulary entry or added token, given in tokenizer.json's own spelling
  // (e.g. "<|im_end|>", or "Ġthe" for a byte-level entry).
  std::optional<TokenId> TokenToId(std::string_view token) const;
  // One past the largest id.
  size_t vocab_size() const;
  const std::vector<AddedToken>& added_tokens() const;

 private:
  explicit Tokenizer(std::unique_ptr<TokenizerImpl> impl);
  std::unique_ptr<TokenizerImpl> impl_;
};

// Turns a stream of ids into text for streaming output. Text is emitted only as complete UTF-8
// characters: a character whose bytes are spread over several tokens is held until complete, and
// ill-formed bytes become U+FFFD exactly where Tokenizer::Decode would put them. So the
// concatenation of everything Push and Finish emit equals Decode of all the ids.
class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens = false);
  // Appends the text that became complete with `id` to `out` (possibly nothing).
  Status Push(TokenId id, std::string* out);
  // End of stream: appends what is still held (a truncated character becomes U+FFFD).
  void Finish(std::string* out);
  // Bytes held back, waiting for the rest of a character.
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_tokens_;
  std::string pending_;
};

}  // namespace fp8lm
