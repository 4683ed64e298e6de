// The per-token-group quantization kernel against its CPU twin: codes and scales bit for bit, on
// fresh random inputs with outputs poisoned first; tiny, ragged and Qwen3 widths; zero groups and
// extreme magnitudes.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "fp8lm/cpu.h"
#include "fp8lm/quant.h"
#include "fp8lm/device_buffer.h"
#include "fp8lm/random.h"

namespace fp8lm {
namespace {

struct Case {
  int m, k;
};

class QuantGpu : public ::testing::TestWithParam<Case> {};

TEST_P(QuantGpu, BitExactWithCpuTwin) {
  const auto [m, k] = GetParam();
  Rng rng(7919ull * m + k);
  const int groups = ceil_div(k, kQuantGroup);
  std::vector<bf16> in(static_cast<std::size_t>(m) * k);
  for (int r = 0; r < m; ++r) {
    // Each row has its own magnitude (tiny to huge), and every element varies within the row.
    const double row_scale = std::pow(10.0, rng.uniform(-30, 30));
    for (int c = 0; c < k; ++c)
      in[static_cast<std::size_t>(r) * k + c] =
          float_to_bf16(static_cast<float>(rng.normal() * row_scale * std::pow(10.0, rng.uniform(-2, 2))));
  }
  if (m > 1 && k >= 256)  // one all-zero group: the floor scale, all-zero codes
    for (int c = 128; c < 256; ++c) in[static_cast<std::size_t>(k) + c] = float_to_bf16(0.0f);

  DeviceBuffer<bf16> d_in(in);
  DeviceBuffer<fp8_e4m3> d_out(in.size());
  DeviceBuffer<float> d_scales(static_cast<std::size_t>(m) * groups);
  d_out.fill_bytes(0xFF);
  d_scales.fill_bytes(0xFF);
  ASSERT_TRUE(quantize_per_token_group({d_in.get(), d_out.get(), d_scales.get(), m, k}, nullptr).ok());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

  std::vector<fp8_e4m3> want(in.size());
  std::vector<float> want_scales(static_cast<std::size_t>(m) * groups);
  ASSERT_TRUE(cpu::quantize_per_token_group({in.data(), want.data(), want_scales.data(), m, k}).ok());
  const auto got = d_out.download();
  const auto got_scales = d_scales.download();
  for (std::size_t i = 0; i < want_scales.size(); ++i)
    ASSERT_EQ(got_scales[i], want_scales[i]) << "scale of row " << i / groups << " group " << i % groups;
  for (std::size_t i = 0; i < want.size(); ++i)
    ASSERT_EQ(got[i].bits, want[i].bits) << "code at row " << i / k << " col " << i % k;
}

INSTANTIATE_TEST_SUITE_P(Shapes, QuantGpu,
                         ::testing::Values(Case{1, 16}, Case{2, 144}, Case{3, 1024}, Case{7, 400}, Case{16, 2048},
                                           Case{64, 4096}, Case{100, 5120}, Case{256, 2560}, Case{1000, 6144},
                                           Case{4096, 12288}, Case{1, 25600}, Case{3, 17408}),
                         [](const auto& info) {
                           return "m" + std::to_string(info.param.m) + "k" + std::to_string(info.param.k);
                         });

TEST(QuantGpuArgs, RejectsBadArgumentsWithoutLaunching) {
  DeviceBuffer<bf16> in(64);
  DeviceBuffer<fp8_e4m3> out(64);
  DeviceBuffer<float> scales(4);
  const Status s = quantize_per_token_group({in.get(), out.get(), scales.get(), 2, 24}, nullptr);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("multiple of 16"), std::string::npos) << s.message();
  EXPECT_TRUE(quantize_per_token_group({nullptr, nullptr, nullptr, 0, 32}, nullptr).ok());
}

}  // namespace
}  // namespace fp8lm
