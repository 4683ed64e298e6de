#include "pre_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>


namespace fp8lm {

struct RegexSplitter::Pcre {
  pcre2_code* code = nullptr;
  ~Pcre() {
    if (code) pcre2_code_free(code);
  }
};

RegexSplitter::~RegexSplitter() = default;

std::string TranslateOnigurumaPattern(std::string_view pattern) {
  constexpr std::string_view kSpace = "\\p{White_Space}";
  constexpr std::string_view kNotSpace = "\\P{White_Space}";
  constexpr std::string_view kExtraNumbers = "\\x{1D2C0}-\\x{1D2D3}";
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[i + 1];
      if (e == 's' || e == 'S') {
        out += e == 's' ? kSpace : kNotSpace;
        ++i;
      } else if ((e == 'p' || e == 'P') && pattern.substr(i + 2, 3) == "{N}" && (e == 'p' || !in_class)) {
        const std::string numbers = "\\p{N}" + std::string(kExtraNumbers);
        out += in_class ? numbers : (e == 'p' ? "[" : "[^") + numbers + "]";
        i += 4;
      } else {
        out += c;
        out += e;
        ++i;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];  // literal ']'
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

Status RegexSplitter::Compile(std::string_view pattern, bool literal,
                              std::unique_ptr<RegexSplitter>* out) {
  std::unique_ptr<RegexSplitter> splitter(new RegexSplitter());
  splitter->pcre_ = std::make_unique<Pcre>();
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  uint32_t flags = PCRE2_UTF | PCRE2_UCP;
  if (literal) flags |= PCRE2_LITERAL;
  const std::string translated = literal ? std::string(pattern) : TranslateOnigurumaPattern(pattern);
  splitter->pcre_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                        flags, &error_code, &error_offset, nullptr);
  if (splitter->pcre_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    return Status::Error("pre-tokenizer regex does not compile (PCRE2: " +
                         std::string(reinterpret_cast<char*>(message)) + " at offset " +
                         std::to_string(error_offset) + "): " + std::string(pattern));
  }
  // JIT is an optimisation: where the platform lacks it, the interpreter gives the same matches.
  splitter->jit_ = pcre2_jit_compile(splitter->pcre_->code, PCRE2_JIT_COMPLETE) == 0;
  *out = std::move(splitter);
  return Status::Ok();
}

bool RegexSplitter::Find(std::string_view text, size_t offset, size_t* begin, size_t* end) const {
  // One match block per thread, shared by all regexes: matching must not allocate in the hot
  // loop. It holds only the whole-match offsets; with capture groups in the pattern pcre2 then
  // returns 0 ("ovector too small") but still reports the whole match, which is all we use.
  struct MatchData {
    pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
    ~MatchData() { pcre2_match_data_free(data); }
  };
  thread_local MatchData match_data;
  pcre2_match_data* md = match_data.data;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  // The caller has validated the UTF-8, so PCRE2 need not check it again on every call.
  const int rc = jit_ ? pcre2_jit_match(pcre_->code, subject, text.size(), offset, PCRE2_NO_UTF_CHECK, md, nullptr)
                      : pcre2_match(pcre_->code, subject, text.size(), offset, PCRE2_NO_UTF_CHECK, md, nullptr);
  if (rc < 0) return false;  // PCRE2_ERROR_NOMATCH (or a resource limit: the rest is one gap piece)
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
  *begin = ov[0];
  *end = ov[1];
  return true;
}

Status NormalizeNfc(std::string_view text, std::string* scratch, std::string_view* out) {
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(err);
  if (U_FAILURE(err)) return Status::Error(std::string("ICU NFC normalizer unavailable: ") + u_errorName(err));
  bool ascii = true;
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      ascii = false;
      break;
    }
  }
  const icu::StringPiece piece(text.data(), static_cast<int32_t>(text.size()));
  if (ascii || nfc->isNormalizedUTF8(piece, err)) {
    if (U_FAILURE(err)) return Status::Error(std::string("ICU NFC check failed: ") + u_errorName(err));
    *out = text;
    return Status::Ok();
  }
  scratch->clear();
  icu::StringByteSink<std::string> sink(scratch);
  err = U_ZERO_ERROR;
  nfc->normalizeUTF8(0, piece, sink, nullptr, err);
  if (U_FAILURE(err)) return Status::Error(std::string("ICU NFC normalization failed: ") + u_errorName(err));
  *out = *scratch;
  return Status::Ok();
}

}  // namespace fp8lm
