#include "byte_level.h"

namespace fp8lm::byte_level {

namespace {
struct Tables {
  std::array<uint32_t, 256> byte_to_cp{};
  std::array<int16_t, 512> cp_to_byte{};  // -1: not in the alphabet
  Tables() {
    cp_to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      byte_to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
      cp_to_byte[byte_to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};
const Tables& GetTables() {
  static const Tables tables;
  return tables;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {  // the alphabet stays below U+0800
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}
}  // namespace

uint32_t ByteToCodePoint(uint8_t b) { return GetTables().byte_to_cp[b]; }

std::string ByteToChars(uint8_t b) {
  std::string s;
  AppendUtf8(ByteToCodePoint(b), &s);
  return s;
}

std::string TokenToBytes(std::string_view token) {
  const Tables& t = GetTables();
  std::string bytes;
  bytes.reserve(token.size());
  size_t i = 0;
  while (i < token.size()) {
    const auto c0 = static_cast<uint8_t>(token[i]);
    uint32_t cp;
    size_t len;
    if (c0 < 0x80) {
      cp = c0;
      len = 1;
    } else if ((c0 & 0xE0) == 0xC0 && i + 1 < token.size()) {
      cp = ((c0 & 0x1Fu) << 6) | (static_cast<uint8_t>(token[i + 1]) & 0x3Fu);
      len = 2;
    } else {
      return std::string(token);  // 3+ byte characters are outside the alphabet
    }
    if (cp >= t.cp_to_byte.size() || t.cp_to_byte[cp] < 0) return std::string(token);
    bytes.push_back(static_cast<char>(t.cp_to_byte[cp]));
    i += len;
  }
  return bytes;
}

}  // namespace fp8lm::byte_level
