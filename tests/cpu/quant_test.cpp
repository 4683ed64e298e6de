// CPU quantizers: scales follow amax / 448 (with the floor), values reconstruct within FP8's
// precision, ragged groups and blocks have their own scales, bad arguments are refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "fp8lm/random.h"
#include "fp8lm/cpu.h"

namespace fp8lm {
namespace {

// e4m3 keeps 4 significant bits: a normal value reconstructs within 2^-4 relative (half an ulp
// is 2^-4 of the value's power of two); subnormals (below 2^-6 of the scale) within 2^-10 * scale.
double reconstruction_bound(double x, double scale) { return std::ldexp(std::fabs(x), -4) + 0x1.0p-10 * scale; }

std::vector<bf16> random_activations(int m, int k, Rng& rng) {
  std::vector<bf16> v(static_cast<std::size_t>(m) * k);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double magnitude = std::pow(10.0, rng.uniform(-3, 3));  // per element: wide dynamic range
    v[i] = float_to_bf16(static_cast<float>(rng.normal() * magnitude));
  }
  return v;
}

void check_per_token_group(int m, int k, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<bf16> in = random_activations(m, k, rng);
  if (k >= 256) std::fill(in.begin() + kQuantGroup, in.begin() + 2 * kQuantGroup, float_to_bf16(0.0f));
  const int groups = ceil_div(k, kQuantGroup);
  std::vector<fp8_e4m3> out(in.size(), fp8_e4m3{0x7F});
  std::vector<float> scales(static_cast<std::size_t>(m) * groups, NAN);
  ASSERT_TRUE(cpu::quantize_per_token_group({in.data(), out.data(), scales.data(), m, k}).ok());
  for (int r = 0; r < m; ++r)
    for (int g = 0; g < groups; ++g) {
      float amax = 0;
      const int c0 = g * kQuantGroup, c1 = std::min(k, c0 + kQuantGroup);
      for (int c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(bf16_to_float(in[r * k + c])));
      const float scale = scales[r * groups + g];
      ASSERT_EQ(scale, std::max(amax, kAmaxFloor) / 448.0f) << "row " << r << " group " << g;
      for (int c = c0; c < c1; ++c) {
        const double x = bf16_to_float(in[r * k + c]);
        const double y = cpu::fp8_decode(out[r * k + c]) * static_cast<double>(scale);
        ASSERT_LE(std::fabs(y - x), reconstruction_bound(x, scale)) << "row " << r << " col " << c;
        if (std::fabs(x) == amax && amax > 0) {
          ASSERT_EQ(std::fabs(cpu::fp8_decode(out[r * k + c])), 448.0f) << "the group's amax maps to 448";
        }
      }
    }
}

TEST(QuantizePerTokenGroup, QwenWidths) {
  check_per_token_group(3, 1024, 1);
  check_per_token_group(2, 4096, 2);
}
TEST(QuantizePerTokenGroup, RaggedLastGroup) {
  check_per_token_group(5, 144, 3);  // 128 + 16
  check_per_token_group(1, 16, 4);
  check_per_token_group(7, 400, 5);  // 3 x 128 + 16
}

TEST(QuantizePerTokenGroup, ZeroGroupGetsFloorScaleAndZeros) {
  std::vector<bf16> in(256, float_to_bf16(0.0f));
  in[200] = float_to_bf16(3.0f);
  std::vector<fp8_e4m3> out(256, fp8_e4m3{0x7F});
  std::vector<float> scales(2, NAN);
  ASSERT_TRUE(cpu::quantize_per_token_group({in.data(), out.data(), scales.data(), 1, 256}).ok());
  EXPECT_EQ(scales[0], kAmaxFloor / 448.0f);
  for (int i = 0; i < 128; ++i) EXPECT_EQ(out[i].bits, 0);
  EXPECT_EQ(scales[1], 3.0f / 448.0f);
  EXPECT_EQ(cpu::fp8_decode(out[200]), 448.0f);
}

TEST(QuantizePerTokenGroup, RejectsBadArguments) {
  std::vector<bf16> in(64);
  std::vector<fp8_e4m3> out(64);
  std::vector<float> scales(4);
  Status s = cpu::quantize_per_token_group({in.data(), out.data(), scales.data(), 2, 24});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("multiple of 16"), std::string::npos) << s.message();
  s = cpu::quantize_per_token_group({nullptr, out.data(), scales.data(), 2, 32});
  EXPECT_NE(s.message().find("in ("), std::string::npos) << s.message();
  s = cpu::quantize_per_token_group({in.data(), out.data(), scales.data(), -1, 32});
  EXPECT_NE(s.message().find("negative"), std::string::npos) << s.message();
  EXPECT_TRUE(cpu::quantize_per_token_group({nullptr, nullptr, nullptr, 0, 32}).ok()) << "m == 0 is a no-op";
}

// With a gather (MoE: rows in expert order), output row r is input row rows[r] quantized: the same
// bits as quantizing a gathered copy; an index outside [0, in_rows) is refused.
TEST(QuantizePerTokenGroup, GatherEqualsQuantizingTheGatheredRows) {
  Rng rng(6);
  const int in_rows = 3, k = 400;
  const std::vector<bf16> in = random_activations(in_rows, k, rng);
  const std::vector<std::int32_t> rows = {2, 0, 2, 1};
  const int m = static_cast<int>(rows.size()), groups = ceil_div(k, kQuantGroup);
  std::vector<bf16> gathered;
  for (int r : rows) gathered.insert(gathered.end(), in.begin() + r * k, in.begin() + (r + 1) * k);
  std::vector<fp8_e4m3> want(gathered.size()), got(gathered.size(), fp8_e4m3{0x7F});
  std::vector<float> want_scales(static_cast<std::size_t>(m) * groups), got_scales(want_scales.size(), NAN);
  ASSERT_TRUE(cpu::quantize_per_token_group({gathered.data(), want.data(), want_scales.data(), m, k}).ok());
  ASSERT_TRUE(
      cpu::quantize_per_token_group({in.data(), got.data(), got_scales.data(), m, k, rows.data(), in_rows}).ok());
  for (std::size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i].bits, want[i].bits) << "code " << i;
  EXPECT_EQ(got_scales, want_scales);

  const std::vector<std::int32_t> bad = {0, 3};
  Status s = cpu::quantize_per_token_group({in.data(), got.data(), got_scales.data(), 2, k, bad.data(), in_rows});
  EXPECT_NE(s.message().find("rows[1] = 3 is outside [0, 3)"), std::string::npos) << s.message();
  s = cpu::quantize_per_token_group({in.data(), got.data(), got_scales.data(), 2, k, rows.data(), 0});
  EXPECT_NE(s.message().find("in_rows = 0 must be >= 1"), std::string::npos) << s.message();
}

TEST(QuantizeWeightBlockwise, RaggedBlocks) {
  const int n = 130, k = 272;  // 2 x 3 blocks, the last ones ragged
  Rng rng(11);
  std::vector<float> w(static_cast<std::size_t>(n) * k);
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < k; ++c)  // a different magnitude per block, so a wrong block index shows
      w[r * k + c] = static_cast<float>(rng.normal() * std::pow(4.0, r / 128 + 2 * (c / 128)));
  std::vector<fp8_e4m3> out(w.size());
  std::vector<float> scales(2 * 3, NAN);
  ASSERT_TRUE(cpu::quantize_weight_blockwise(w.data(), n, k, out.data(), scales.data()).ok());
  for (int nb = 0; nb < 2; ++nb)
    for (int kb = 0; kb < 3; ++kb) {
      float amax = 0;
      for (int r = nb * 128; r < std::min(n, nb * 128 + 128); ++r)
        for (int c = kb * 128; c < std::min(k, kb * 128 + 128); ++c) amax = std::max(amax, std::fabs(w[r * k + c]));
      ASSERT_EQ(scales[nb * 3 + kb], amax / 448.0f) << nb << "," << kb;
    }
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < k; ++c) {
      const double scale = scales[(r / 128) * 3 + c / 128];
      const double y = cpu::fp8_decode(out[r * k + c]) * scale;
      ASSERT_LE(std::fabs(y - w[r * k + c]), reconstruction_bound(w[r * k + c], scale));
    }
  EXPECT_FALSE(cpu::quantize_weight_blockwise(w.data(), 0, k, out.data(), scales.data()).ok());
}

}  // namespace
}  // namespace fp8lm
