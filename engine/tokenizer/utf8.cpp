#include "utf8.h"

#include <cstdint>

namespace fp8lm::utf8 {

namespace {
// Valid ranges of the second byte after a lead byte (Unicode Table 3-7); later bytes are 80..BF.
struct LeadInfo {
  uint8_t length;      // 0: the byte can never start a character
  uint8_t second_lo;
  uint8_t second_hi;
};
constexpr LeadInfo Lead(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b < 0xC2) return {0, 0, 0};
  if (b < 0xE0) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b < 0xF0) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b < 0xF4) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}
}  // namespace

Step DecodeStep(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const LeadInfo lead = Lead(p[0]);
  if (lead.length == 1) return {Step::kValid, 1};
  if (lead.length == 0) return {Step::kInvalid, 1};
  for (size_t k = 1; k < lead.length; ++k) {
    if (k >= s.size()) return {Step::kIncomplete, s.size()};
    const uint8_t lo = k == 1 ? lead.second_lo : 0x80;
    const uint8_t hi = k == 1 ? lead.second_hi : 0xBF;
    if (p[k] < lo || p[k] > hi) return {Step::kInvalid, k};
  }
  return {Step::kValid, lead.length};
}

size_t FindInvalid(std::string_view s) {
  const size_t valid = CompletePrefix(s);
  return valid == s.size() ? std::string_view::npos : valid;
}

void AppendLossy(std::string_view s, std::string* out) {
  size_t i = 0;
  size_t run = 0;  // start of the current run of valid bytes
  while (i < s.size()) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const Step step = DecodeStep(s.substr(i));
    if (step.kind == Step::kValid) {
      i += step.length;
      continue;
    }
    out->append(s.substr(run, i - run));
    out->append(kReplacement);
    i += step.length;
    run = i;
  }
  out->append(s.substr(run));
}

size_t CompletePrefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const Step step = DecodeStep(s.substr(i));
    if (step.kind != Step::kValid) return i;
    i += step.length;
  }
  return i;
}

}  // namespace fp8lm::utf8
