// The ByteLevel mapping of GPT-2 (Hugging Face "ByteLevel" pre-tokenizer and decoder): every byte
// is shown as one printable Unicode character, so vocab and merges are written in that alphabet.
// fp8lm works on raw bytes internally and converts tokenizer.json's spellings once, at load.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace fp8lm::byte_level {

// Code point that shows byte `b`.
uint32_t ByteToCodePoint(uint8_t b);

// UTF-8 spelling of byte `b` (one character).
std::string ByteToChars(uint8_t b);

// The bytes a token spelled in the ByteLevel alphabet stands for. Exactly Hugging Face's ByteLevel
// decoder rule: if every character of `token` is in the alphabet, the mapped bytes; otherwise the
// token's own UTF-8 bytes (this is what happens to added tokens such as "<|im_end|>" written in
// plain text: ASCII printable characters map to themselves either way).
std::string TokenToBytes(std::string_view token);

}  // namespace fp8lm::byte_level
