// The CPU FP8 codec: every code, rounding ties, saturation, NaN, and agreement with the
// independent host implementation in CUDA's cuda_fp8.h on every bf16 value and random floats.
#include <cuda_fp8.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "fp8lm/random.h"
#include "fp8lm/cpu.h"

namespace fp8lm {
namespace {

std::uint8_t enc(float x) { return cpu::fp8_encode(x).bits; }
float dec(std::uint8_t c) { return cpu::fp8_decode(fp8_e4m3{c}); }
std::uint8_t cuda_host_enc(float x) { return __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3); }
float bits_to_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

TEST(Fp8Codec, AllCodesRoundTrip) {
  for (int c = 0; c < 256; ++c) {
    const float v = dec(static_cast<std::uint8_t>(c));
    if ((c & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(v)) << "code " << c;
      continue;
    }
    EXPECT_EQ(enc(v), c) << "code " << c << " value " << v;
  }
}

TEST(Fp8Codec, KnownValues) {
  EXPECT_EQ(dec(0x7E), 448.0f);
  EXPECT_EQ(dec(0xFE), -448.0f);
  EXPECT_EQ(dec(0x38), 1.0f);
  EXPECT_EQ(dec(0x08), 0x1.0p-6f);  // smallest normal
  EXPECT_EQ(dec(0x01), 0x1.0p-9f);  // smallest subnormal
  EXPECT_EQ(dec(0x07), 7 * 0x1.0p-9f);
  EXPECT_EQ(dec(0x00), 0.0f);
  EXPECT_TRUE(std::signbit(dec(0x80)));
}

TEST(Fp8Codec, PositiveCodesAreIncreasing) {
  for (int c = 1; c < 0x7F; ++c) EXPECT_LT(dec(c - 1), dec(c)) << "code " << c;
}

TEST(Fp8Codec, TiesRoundToEven) {
  EXPECT_EQ(enc(1.0625f), 0x38);         // between 1.0 (0x38) and 1.125 (0x39)
  EXPECT_EQ(enc(1.1875f), 0x3A);         // between 1.125 (0x39) and 1.25 (0x3A)
  EXPECT_EQ(enc(0x1.0p-10f), 0x00);      // half the smallest subnormal
  EXPECT_EQ(enc(3 * 0x1.0p-10f), 0x02);  // between subnormals 1 and 2
  EXPECT_EQ(enc(15 * 0x1.0p-10f), 0x08); // between the largest subnormal and the smallest normal
  EXPECT_EQ(enc(-1.0625f), 0xB8);
  EXPECT_EQ(enc(1.0626f), 0x39);         // just above a tie rounds up
}

TEST(Fp8Codec, SaturatesAndKeepsNaN) {
  EXPECT_EQ(enc(448.0f), 0x7E);
  EXPECT_EQ(enc(463.99f), 0x7E);
  EXPECT_EQ(enc(464.0f), 0x7E);  // would round to 480, which e4m3fn lacks
  EXPECT_EQ(enc(1e30f), 0x7E);
  EXPECT_EQ(enc(INFINITY), 0x7E);
  EXPECT_EQ(enc(-INFINITY), 0xFE);
  EXPECT_EQ(enc(-1e30f), 0xFE);
  EXPECT_EQ(enc(NAN), 0x7F);
  EXPECT_EQ(enc(-NAN), 0x7F);  // as the GPU: one NaN code, sign dropped
  EXPECT_EQ(enc(-0.0f), 0x80);
  EXPECT_EQ(enc(1e-30f), 0x00);
}

TEST(Fp8Codec, MatchesCudaHostConversionOnEveryBf16) {
  int mismatches = 0;
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const float x = bits_to_float(b << 16);
    if (std::isnan(x)) continue;  // NaN payload/sign conventions are checked against the GPU
    if (enc(x) != cuda_host_enc(x) && mismatches++ < 10)
      ADD_FAILURE() << "bf16 bits " << b << " value " << x << ": ours " << int(enc(x)) << " cuda "
                    << int(cuda_host_enc(x));
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(Fp8Codec, MatchesCudaHostConversionOnRandomFloats) {
  Rng rng(20261127);
  int mismatches = 0;
  for (int i = 0; i < 2'000'000; ++i) {
    // Random bit patterns cover every exponent; scaled normals cover the interesting range densely.
    const float x = (i % 2) ? bits_to_float(static_cast<std::uint32_t>(rng.next()))
                            : static_cast<float>(rng.normal() * std::pow(2.0, rng.uniform(-12, 10)));
    if (std::isnan(x)) continue;
    if (enc(x) != cuda_host_enc(x) && mismatches++ < 10)
      ADD_FAILURE() << "value " << x << ": ours " << int(enc(x)) << " cuda " << int(cuda_host_enc(x));
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(Bf16, RoundToNearestEvenAndNaN) {
  EXPECT_EQ(float_to_bf16(1.0f).bits, 0x3F80);
  EXPECT_EQ(float_to_bf16(bits_to_float(0x3F808000)).bits, 0x3F80);  // tie -> even
  EXPECT_EQ(float_to_bf16(bits_to_float(0x3F818000)).bits, 0x3F82);  // tie -> even (up)
  EXPECT_EQ(float_to_bf16(bits_to_float(0x3F808001)).bits, 0x3F81);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(NAN))));
  EXPECT_EQ(float_to_bf16(INFINITY).bits, 0x7F80);
  Rng rng(7);
  for (int i = 0; i < 100000; ++i) {
    const float x = bits_to_float(static_cast<std::uint32_t>(rng.next()));
    if (std::isnan(x)) continue;
    const float y = bf16_to_float(float_to_bf16(x));
    if (std::isinf(y) && !std::isinf(x)) continue;  // rounding past the largest bf16
    // Half a bf16 ulp: 2^-8 relative for normals, 2^-134 absolute among the subnormals.
    ASSERT_LE(std::fabs(y - x), std::ldexp(std::fabs(x), -8) + 0x1.0p-134f) << x;
  }
}

}  // namespace
}  // namespace fp8lm
