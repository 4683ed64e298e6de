// FP8 e4m3fn decode (the encoder, the CPU twin of cvt.rn.satfinite.e4m3x2.f32, is inline in cpu.h).
#include <cmath>

#include "fp8lm/cpu.h"

namespace fp8lm::cpu {

float fp8_decode(fp8_e4m3 v) {
  using namespace e4m3;
  const int exp = (v.bits >> kMantBits) & 0xF;
  const int man = v.bits & 0x7;
  const float sign = (v.bits & kSignBit) ? -1.0f : 1.0f;
  if (exp == 0xF && man == 0x7) return std::nanf("");
  if (exp == 0) return sign * std::ldexp(static_cast<float>(man), -9);
  return sign * std::ldexp(static_cast<float>(8 + man), exp - kExpBias - kMantBits);
}

}  // namespace fp8lm::cpu
