// UTF-8 validation and lossy decoding, shared by the encoder (input checks), the decoder and the
// incremental detokenizer. Lossy decoding replaces each "maximal subpart" of an ill-formed sequence
// with U+FFFD (Unicode ch. 3, "U+FFFD Substitution of Maximal Subparts"), which is what Rust's
// String::from_utf8_lossy and therefore Hugging Face tokenizers' decode do.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace fp8lm::utf8 {

inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// One step of decoding at the start of `s` (non-empty).
struct Step {
  enum Kind { kValid, kInvalid, kIncomplete } kind;
  // kValid: length of the character. kInvalid: length of the maximal ill-formed subpart (>= 1),
  // to be replaced by one U+FFFD. kIncomplete: the whole of `s` is a valid but truncated prefix.
  size_t length;
};
Step DecodeStep(std::string_view s);

// Byte offset of the first ill-formed (or truncated) sequence, or std::string_view::npos.
size_t FindInvalid(std::string_view s);

// Appends `s` to `out`, each maximal ill-formed subpart (including a truncated tail) replaced by
// U+FFFD.
void AppendLossy(std::string_view s, std::string* out);

// Number of bytes at the start of `s` that form complete, valid characters, when `s` may be cut
// in the middle of a character at its end. Stops at the first ill-formed subpart too.
size_t CompletePrefix(std::string_view s);

}  // namespace fp8lm::utf8
