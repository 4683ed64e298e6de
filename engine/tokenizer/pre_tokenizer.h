// The "Split" pre-tokenizer of tokenizer.json with behavior "Isolated": every regex match is a
// piece and so is every gap between matches. Regexes run on PCRE2 (UTF + UCP, JIT-compiled when
// the platform supports it). Hugging Face uses Oniguruma, whose classes differ from PCRE2 10.42's
// in two ways that change Qwen3 ids (found by encoding every code point with both):
// - \s: Oniguruma's is the Unicode White_Space property; PCRE2's UCP \s also matches U+180E
//   MONGOLIAN VOWEL SEPARATOR (White_Space before Unicode 6.3). So \s and \S become
//   \p{White_Space} and \P{White_Space}.
// - \p{N}: U+1D2C0..U+1D2D3 KAKTOVIK NUMERALS (Unicode 15) are numbers in Oniguruma's tables and
//   not in PCRE2 10.42's; they are added to \p{N} and \P{N} (a no-op with newer tables).
// TranslateOnigurumaPattern does both.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fp8lm/status.h"

namespace fp8lm {

class RegexSplitter {
 public:
  // `literal`: the pattern is a plain string ({"String": ...} in tokenizer.json).
  static Status Compile(std::string_view pattern, bool literal, std::unique_ptr<RegexSplitter>* out);
  ~RegexSplitter();

  // Calls fn(piece) for every piece of `text` (valid UTF-8), in order; pieces are non-empty and
  // cover `text` exactly.
  template <typename Fn>
  void Split(std::string_view text, Fn&& fn) const {
    size_t begin = 0;
    size_t match_begin, match_end;
    size_t offset = 0;
    while (offset < text.size() && Find(text, offset, &match_begin, &match_end)) {
      if (match_begin > begin) fn(text.substr(begin, match_begin - begin));
      if (match_end > match_begin) {
        fn(text.substr(match_begin, match_end - match_begin));
        begin = offset = match_end;
      } else {
        // An empty match: step over one character and keep searching.
        offset = match_end + 1;
        while (offset < text.size() && (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80) ++offset;
      }
    }
    if (begin < text.size()) fn(text.substr(begin));
  }

  bool jit() const { return jit_; }

 private:
  RegexSplitter() = default;
  bool Find(std::string_view text, size_t offset, size_t* begin, size_t* end) const;
  struct Pcre;
  std::unique_ptr<Pcre> pcre_;
  bool jit_ = false;
};

// The pattern with the Oniguruma compatibility additions described above.
std::string TranslateOnigurumaPattern(std::string_view pattern);

// NFC normalization through ICU. Returns `text` itself when it is already NFC (the common case).
Status NormalizeNfc(std::string_view text, std::string* scratch, std::string_view* out);

}  // namespace fp8lm
