// Why the flash attention kernel splits P (kernels/attention/flash_attention.cu, "PRECISION") and where
// the GPU test's bounds come from (tests/gpu/layer_ops_gpu_test.cpp, AttentionFlashGpu): a model of
// the kernel's arithmetic in plain C++ (scores as sums of 16-element partial sums like the mma
// k-steps, 64-key tiles, base-2 online softmax, P.V accumulated in fp32 with P either split into
// bf16 hi + lo or rounded to bf16) against the CPU twin, outputs compared after the bf16 rounding.
// It models the arithmetic, not the kernel: the GPU tests check the kernel itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "fp8lm/layer_ops.h"
#include "fp8lm/random.h"

namespace fp8lm {
namespace {

constexpr int kHd = 128;
constexpr int kTileKeys = 64;
constexpr int kKStep = 16;
constexpr float kLog2e = 1.44269504088896341f;
// The GPU test's bounds for the flash kernel.
constexpr double kMaxDifferShare = 0.02;
constexpr double kMaxRelFrobenius = 5e-4;

enum class PMode { kSplit, kBf16 };

// One query (one head) against `keys` keys, as the flash kernel computes it.
void model_attention(const float* q, const std::vector<float>& k, const std::vector<float>& v, int keys, float scale,
                     PMode mode, float* out) {
  const float c = scale * kLog2e;
  std::vector<float> o(kHd, 0.0f);
  float m = -INFINITY, l = 0.0f;
  for (int t0 = 0; t0 < keys; t0 += kTileKeys) {
    const int t1 = std::min(keys, t0 + kTileKeys);
    float s[kTileKeys], mx = -INFINITY;
    for (int j = t0; j < t1; ++j) {
      float acc = 0.0f;
      for (int d0 = 0; d0 < kHd; d0 += kKStep) {
        float part = 0.0f;
        for (int d = d0; d < d0 + kKStep; ++d) part += q[d] * k[static_cast<std::size_t>(j) * kHd + d];
        acc += part;
      }
      s[j - t0] = acc;
      mx = std::max(mx, acc);
    }
    const float m_new = std::max(m, mx * c), alpha = std::exp2(m - m_new);
    m = m_new;
    float sum = 0.0f;
    for (float& x : o) x *= alpha;
    for (int j = t0; j < t1; ++j) {
      const float p = std::exp2(std::fma(s[j - t0], c, -m_new));
      sum += p;
      const float hi = round_bf16(p), lo = mode == PMode::kSplit ? round_bf16(p - hi) : 0.0f;
      const float* vj = &v[static_cast<std::size_t>(j) * kHd];
      for (int d = 0; d < kHd; ++d) o[d] += hi * vj[d];  // the P_hi mma, then the P_lo one
      for (int d = 0; d < kHd; ++d) o[d] += lo * vj[d];
    }
    l = l * alpha + sum;
  }
  for (int d = 0; d < kHd; ++d) out[d] = o[d] / l;
}

struct Agreement {
  double differ_share, rel;
};

Agreement compare_with_twin(int keys, double q_scale, PMode mode) {
  constexpr int kQueries = 64;
  Rng rng(1000003ull * keys + static_cast<std::uint64_t>(q_scale));
  std::vector<bf16> k(static_cast<std::size_t>(keys) * kHd), v(k.size()), q(static_cast<std::size_t>(kQueries) * kHd);
  for (auto& x : k) x = float_to_bf16(static_cast<float>(rng.normal()));
  for (auto& x : v) x = float_to_bf16(static_cast<float>(rng.normal()));
  for (auto& x : q) x = float_to_bf16(static_cast<float>(rng.normal() * q_scale));
  std::vector<float> kf(k.size()), vf(v.size()), qf(q.size());
  for (std::size_t i = 0; i < k.size(); ++i) kf[i] = bf16_to_float(k[i]), vf[i] = bf16_to_float(v[i]);
  for (std::size_t i = 0; i < q.size(); ++i) qf[i] = bf16_to_float(q[i]);
  const float scale = static_cast<float>(1.0 / std::sqrt(double(kHd)));
  long long differ = 0;
  double err2 = 0, ref2 = 0;
  std::vector<bf16> want(kHd);
  std::vector<float> got(kHd);
  const std::int32_t page0[1] = {0};  // the contiguous cache: one page of every key
  for (int i = 0; i < kQueries; ++i) {
    const int n_keys = keys - i;  // query i at position keys - 1 - i (one head, one kv head)
    EXPECT_TRUE(cpu::attention({q.data() + static_cast<std::size_t>(i) * kHd, k.data(), v.data(), page0, keys,
                                want.data(), 1, n_keys - 1, keys, 1, 1, kHd, scale})
                    .ok());
    model_attention(qf.data() + static_cast<std::size_t>(i) * kHd, kf, vf, n_keys, scale, mode, got.data());
    for (int d = 0; d < kHd; ++d) {
      const double g = bf16_to_float(float_to_bf16(got[d])), w = bf16_to_float(want[d]);
      differ += g != w;
      err2 += (g - w) * (g - w), ref2 += w * w;
    }
  }
  return {double(differ) / (double(kQueries) * kHd), std::sqrt(err2 / ref2)};
}

TEST(FlashPrecisionModel, SplitPStaysWithinTheGpuBoundsAndBf16PDoesNot) {
  for (const int keys : {300, 2000})
    for (const double q_scale : {1.0, 6.0}) {  // 6: scores ~N(0, 36), a few keys dominate
      const Agreement split = compare_with_twin(keys, q_scale, PMode::kSplit);
      const Agreement plain = compare_with_twin(keys, q_scale, PMode::kBf16);
      std::printf("  %d keys, q scale %.0f: split P %.3f%% differ, rel %.2e; bf16 P %.3f%% differ, rel %.2e\n", keys,
                  q_scale, 100 * split.differ_share, split.rel, 100 * plain.differ_share, plain.rel);
      EXPECT_LT(split.differ_share, kMaxDifferShare / 4);
      EXPECT_LT(split.rel, kMaxRelFrobenius / 2);
      EXPECT_GT(plain.differ_share, kMaxDifferShare * 4) << "the bounds would not notice a lost P_lo";
    }
}

}  // namespace
}  // namespace fp8lm
