// All 256 e4m3fn codes decoded once (cpu::fp8_decode is exact but slow per element): dequantizing
// a linear for a BF16 checkpoint or a mixed fusion is a table lookup.
#pragma once

#include <array>

#include "fp8lm/cpu.h"

namespace fp8lm {

inline const std::array<float, 256>& fp8_decode_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int c = 0; c < 256; ++c) t[c] = cpu::fp8_decode(fp8_e4m3{static_cast<std::uint8_t>(c)});
    return t;
  }();
  return table;
}

}  // namespace fp8lm
