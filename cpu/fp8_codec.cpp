// FP8 e4m3fn codec (CPU twin of cvt.rn.satfinite.e4m3x2.f32 and of the hardware decode).
#include <cmath>

#include "fp8lm/cpu.h"

namespace fp8lm::cpu {

namespace {
constexpr std::uint8_t kSignBit = 0x80;
constexpr std::uint8_t kNaN = 0x7F;      // e4m3fn's NaN: exponent and mantissa all ones
constexpr std::uint8_t kMaxCode = 0x7E;  // 448 = 1.75 * 2^8
constexpr int kExpBias = 7;
constexpr int kMantBits = 3;
constexpr float kMinNormal = 0.015625f;  // 2^-6
}  // namespace

fp8_e4m3 fp8_encode(float x) {
  // The hardware returns the positive NaN code for every NaN input, whatever its sign.
  if (std::isnan(x)) return {kNaN};
  const std::uint8_t sign = std::signbit(x) ? kSignBit : 0;
  const float a = std::fabs(x);
  // Every finite value >= 448 rounds to 448 or beyond it; satfinite clamps both (and inf) to 448.
  if (a >= kFp8Max) return {static_cast<std::uint8_t>(sign | kMaxCode)};
  if (a < kMinNormal) {
    // Subnormals are multiples of 2^-9; the scaling is exact and nearbyint rounds to nearest even.
    // A result of 8 is the smallest normal (code 0x08), which the same formula encodes.
    const auto q = static_cast<std::uint8_t>(std::nearbyint(a * 512.0f));
    return {static_cast<std::uint8_t>(sign | q)};
  }
  int e;
  std::frexp(a, &e);
  e -= 1;  // a = 1.m * 2^e
  float q = std::nearbyint(std::ldexp(a, kMantBits - e));  // 8..16, exact scaling, RNE
  if (q == 16.0f) {
    q = 8.0f;
    e += 1;
  }
  const int code = ((e + kExpBias) << kMantBits) | (static_cast<int>(q) - 8);
  return {static_cast<std::uint8_t>(sign | code)};
}

float fp8_decode(fp8_e4m3 v) {
  const int exp = (v.bits >> kMantBits) & 0xF;
  const int man = v.bits & 0x7;
  const float sign = (v.bits & kSignBit) ? -1.0f : 1.0f;
  if (exp == 0xF && man == 0x7) return std::nanf("");
  if (exp == 0) return sign * std::ldexp(static_cast<float>(man), -9);
  return sign * std::ldexp(static_cast<float>(8 + man), exp - kExpBias - kMantBits);
}

}  // namespace fp8lm::cpu
