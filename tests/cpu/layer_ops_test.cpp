// CPU twins of the layer ops against hand-computed cases and textbook formulas in double: RMSNorm,
// RoPE (rotate_half pairs i with i + head_dim/2), the cache write, causal masking, the GQA head
// mapping, softmax, SiLU, residual add, embedding, lm_head; bad arguments give errors. The fused
// ops (rmsnorm_quantize, silu_mul_quantize) equal the chains of twins they replace, bit for bit.
// The paged cache: a shuffled block table over a larger pool gives the contiguous cache's bits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "fp8lm/cpu.h"
#include "fp8lm/layer_math.h"
#include "fp8lm/layer_ops.h"
#include "fp8lm/random.h"
#include "bit_compare.h"
#include "paged_cache.h"

namespace fp8lm {
namespace {

float f(bf16 v) { return bf16_to_float(v); }
bf16 b(double v) { return float_to_bf16(static_cast<float>(v)); }

// bf16 keeps 8 significant bits: one rounding moves a value by at most half an ulp, 2^-8 of the
// value in the worst case (just above a power of two), so k roundings stay within k * 2^-8.
void expect_near_rel(double got, double want, int roundings, double abs_floor, const std::string& where) {
  EXPECT_LE(std::fabs(got - want), roundings * 0x1.0p-8 * std::fabs(want) + abs_floor) << where << ": got " << got
                                                                                          << ", want " << want;
}

// ---- RMSNorm ----

TEST(RmsNormCpu, HandComputedRow) {
  // x = [1, 2, 3, 4]: mean(x^2) = 7.5, r = 1/sqrt(7.5 + eps); weight [1, 2, 0.5, -1].
  const std::vector<bf16> x = {b(1), b(2), b(3), b(4)}, w = {b(1), b(2), b(0.5), b(-1)};
  std::vector<bf16> out(4);
  ASSERT_TRUE(cpu::rmsnorm({x.data(), w.data(), out.data(), 1, 4, 4, 4, 1e-6f}).ok());
  const double r = 1.0 / std::sqrt(7.5 + 1e-6);
  const double want[4] = {1 * r, 2 * 2 * r, 0.5 * 3 * r, -4 * r};
  for (int i = 0; i < 4; ++i) expect_near_rel(f(out[i]), want[i], 2, 0, "element " + std::to_string(i));
  // The exact rounding sequence: bf16(w * bf16(x * r)) with r in fp32.
  const float rf = 1.0f / std::sqrt(7.5f + 1e-6f);
  EXPECT_EQ(out[3].bits, float_to_bf16(-1.0f * f(float_to_bf16(4.0f * rf))).bits);
}

TEST(RmsNormCpu, RandomRowsMatchDoubleFormulaInPlaceAndStrided) {
  Rng rng(11);
  const int rows = 5, dim = 1024, stride = 1536;
  std::vector<bf16> x = random_bf16(static_cast<std::size_t>(rows) * stride, rng, 3.0);
  const std::vector<bf16> w = random_bf16(dim, rng);
  std::vector<bf16> out(static_cast<std::size_t>(rows) * dim);
  ASSERT_TRUE(cpu::rmsnorm({x.data(), w.data(), out.data(), rows, dim, stride, dim, 1e-6f}).ok());
  for (int r = 0; r < rows; ++r) {
    double ss = 0;
    for (int i = 0; i < dim; ++i) ss += std::pow(f(x[r * stride + i]), 2);
    const double inv = 1.0 / std::sqrt(ss / dim + 1e-6);
    for (int i = 0; i < dim; ++i)
      expect_near_rel(f(out[r * dim + i]), f(w[i]) * f(x[r * stride + i]) * inv, 2, 1e-30, "row " + std::to_string(r));
  }
  // In place (out == x, same stride) gives the same bits.
  ASSERT_TRUE(cpu::rmsnorm({x.data(), w.data(), x.data(), rows, dim, stride, stride, 1e-6f}).ok());
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < dim; ++i) ASSERT_EQ(x[r * stride + i].bits, out[r * dim + i].bits);
}

// Pages of the contiguous caches below: small, so that every test's cache spans several pages
// (the paged tests further down check that the page layout does not change any bit).
constexpr int kTestPage = 4;

// ---- q/k norm + RoPE + cache ----

struct QkProblem {
  int n, start_pos, capacity, q_heads, kv_heads, head_dim;
  std::vector<bf16> qkv, q_norm, k_norm, k_cache, v_cache;
  std::vector<std::int32_t> table = {};  // empty: the contiguous table of `capacity` rows
  int page_size = kTestPage;
  QkNormRopeArgs args(float theta = 1e6f) {
    if (table.empty()) table = testing::contiguous_table(capacity, page_size);
    return {qkv.data(), q_norm.data(), k_norm.data(), k_cache.data(), v_cache.data(), table.data(), page_size,
            n,          start_pos,     capacity,      q_heads,        kv_heads,        head_dim,     1e-6f,
            theta};
  }
};

QkProblem make_qk(int n, int start_pos, int capacity, int q_heads, int kv_heads, int head_dim, Rng& rng) {
  QkProblem p{n, start_pos, capacity, q_heads, kv_heads, head_dim, {}, {}, {}, {}, {}};
  p.qkv = random_bf16(static_cast<std::size_t>(n) * (q_heads + 2 * kv_heads) * head_dim, rng, 2.0);
  p.q_norm = random_bf16(head_dim, rng);
  p.k_norm = random_bf16(head_dim, rng);
  p.k_cache.assign(static_cast<std::size_t>(capacity) * kv_heads * head_dim, bf16{0x7fc1});  // NaN marker
  p.v_cache = p.k_cache;
  return p;
}

TEST(QkNormRopeCpu, PositionZeroIsThePlainNorm) {
  Rng rng(3);
  QkProblem p = make_qk(1, 0, 4, 2, 1, 16, rng);
  const std::vector<bf16> before = p.qkv;
  ASSERT_TRUE(cpu::qk_norm_rope(p.args()).ok());
  // cos(0) = 1, sin(0) = 0: RoPE is the identity and q/k are just the per-head RMSNorm.
  for (int h = 0; h < 3; ++h) {
    const bf16* w = h < 2 ? p.q_norm.data() : p.k_norm.data();
    std::vector<bf16> want(16);
    ASSERT_TRUE(cpu::rmsnorm({before.data() + h * 16, w, want.data(), 1, 16, 16, 16, 1e-6f}).ok());
    for (int i = 0; i < 16; ++i) EXPECT_EQ(p.qkv[h * 16 + i].bits, want[i].bits) << "head " << h << " element " << i;
  }
}

TEST(QkNormRopeCpu, RotateHalfPairsElementIWithIPlusHalf) {
  // One nonzero element x_i in a head of 8: the norm makes it sqrt(8) (weight 1); at position p,
  // RoPE leaves cos(p w_i) * sqrt(8) at i and sin(p w_i) * sqrt(8) at i + 4 (or -sin at i - 4).
  for (int i : {0, 1, 3, 4, 6}) {
    const int hd = 8, half = 4, pos = 7;
    const double theta = 10000.0;
    QkProblem p{1, pos, 8, 1, 1, hd, {}, {}, {}, {}, {}};
    p.qkv.assign(3 * hd, b(0));
    p.qkv[i] = b(0.75);           // q head
    p.qkv[hd + i] = b(-0.75);     // k head: same position, opposite sign
    p.qkv[2 * hd + 2] = b(1.5);   // v
    p.q_norm.assign(hd, b(1));
    p.k_norm.assign(hd, b(1));
    p.k_cache.assign(8 * hd, b(0));
    p.v_cache.assign(8 * hd, b(0));
    ASSERT_TRUE(cpu::qk_norm_rope(p.args(static_cast<float>(theta))).ok());
    const int j = i % half;
    const double angle = pos * std::pow(theta, -2.0 * j / hd);
    const double y = std::sqrt(8.0 / (1.0 + 8e-6 / (0.75 * 0.75)));
    for (int e = 0; e < hd; ++e) {
      double want = 0;
      if (e == i) want = y * std::cos(angle);
      if (i < half && e == i + half) want = y * std::sin(angle);
      if (i >= half && e == i - half) want = -y * std::sin(angle);
      expect_near_rel(f(p.qkv[e]), want, 4, 1e-6, "q element " + std::to_string(e) + " (x_" + std::to_string(i) + ")");
      expect_near_rel(f(p.qkv[hd + e]), -want, 4, 1e-6, "k element " + std::to_string(e));
      EXPECT_EQ(p.k_cache[pos * hd + e].bits, p.qkv[hd + e].bits) << "k cache row " << pos;
    }
    EXPECT_EQ(f(p.v_cache[pos * hd + 2]), 1.5f);
  }
}

TEST(QkNormRopeCpu, MatchesDoubleFormulaAndWritesOnlyItsCacheRows) {
  Rng rng(5);
  const int n = 3, start = 5, cap = 12, qh = 4, kvh = 2, hd = 32, half = hd / 2;
  QkProblem p = make_qk(n, start, cap, qh, kvh, hd, rng);
  const std::vector<bf16> before = p.qkv;
  ASSERT_TRUE(cpu::qk_norm_rope(p.args()).ok());
  const int row = (qh + 2 * kvh) * hd;
  for (int t = 0; t < n; ++t) {
    for (int h = 0; h < qh + kvh; ++h) {
      const bf16* x = &before[t * row + h * hd];
      const bf16* w = h < qh ? p.q_norm.data() : p.k_norm.data();
      double ss = 0, ymax = 0;
      for (int i = 0; i < hd; ++i) ss += std::pow(f(x[i]), 2);
      std::vector<double> y(hd);
      for (int i = 0; i < hd; ++i) y[i] = f(w[i]) * f(x[i]) / std::sqrt(ss / hd + 1e-6), ymax = std::max(ymax, std::fabs(y[i]));
      for (int i = 0; i < hd; ++i) {
        const double angle = (start + t) * std::pow(1e6, -2.0 * (i % half) / hd);
        const double rot = i < half ? -y[i + half] : y[i - half];
        const double want = y[i] * std::cos(angle) + rot * std::sin(angle);
        // Five bf16 roundings on the way (normalized x, times weight, both products, the sum).
        expect_near_rel(f(p.qkv[t * row + h * hd + i]), want, 0, 5 * 0x1.0p-8 * ymax, "token " + std::to_string(t));
      }
    }
    for (int kv = 0; kv < kvh; ++kv)
      for (int i = 0; i < hd; ++i) {
        EXPECT_EQ(p.k_cache[(start + t) * kvh * hd + kv * hd + i].bits, p.qkv[t * row + (qh + kv) * hd + i].bits);
        EXPECT_EQ(p.v_cache[(start + t) * kvh * hd + kv * hd + i].bits,
                  before[t * row + (qh + kvh + kv) * hd + i].bits);
        EXPECT_EQ(p.qkv[t * row + (qh + kvh + kv) * hd + i].bits, before[t * row + (qh + kvh + kv) * hd + i].bits);
      }
  }
  for (int r = 0; r < cap; ++r)
    if (r < start || r >= start + n)
      for (int i = 0; i < kvh * hd; ++i) {
        ASSERT_EQ(p.k_cache[r * kvh * hd + i].bits, 0x7fc1) << "k cache row " << r << " was written";
        ASSERT_EQ(p.v_cache[r * kvh * hd + i].bits, 0x7fc1) << "v cache row " << r << " was written";
      }
}

// ---- attention ----

struct AttnProblem {
  int n, start_pos, q_heads, kv_heads, head_dim;
  std::vector<bf16> qkv, k_cache, v_cache, out;
  std::vector<std::int32_t> table = {};  // empty: the contiguous table of the whole cache
  int page_size = kTestPage;
  int rows() const { return static_cast<int>(k_cache.size() / (static_cast<std::size_t>(kv_heads) * head_dim)); }
  AttentionArgs args() {
    if (table.empty()) table = testing::contiguous_table(rows(), page_size);
    return {qkv.data(), k_cache.data(), v_cache.data(), table.data(), page_size, out.data(), n, start_pos, rows(),
            q_heads,    kv_heads,       head_dim,       static_cast<float>(1.0 / std::sqrt(head_dim))};
  }
};

AttnProblem make_attn(int n, int start_pos, int q_heads, int kv_heads, int head_dim, Rng& rng, int extra_rows = 0) {
  AttnProblem p{n, start_pos, q_heads, kv_heads, head_dim, {}, {}, {}, {}};
  p.qkv = random_bf16(static_cast<std::size_t>(n) * (q_heads + 2 * kv_heads) * head_dim, rng, 2.0);
  const std::size_t rows = static_cast<std::size_t>(start_pos + n + extra_rows);
  p.k_cache = random_bf16(rows * kv_heads * head_dim, rng);
  p.v_cache = random_bf16(rows * kv_heads * head_dim, rng);
  p.out.assign(static_cast<std::size_t>(n) * q_heads * head_dim, bf16{0xffff});
  return p;
}

// Textbook attention in double for query t, q head h.
std::vector<double> reference_attention(const AttnProblem& p, int t, int h) {
  const int hd = p.head_dim, kv = h / (p.q_heads / p.kv_heads), keys = p.start_pos + t + 1;
  const int qkv_row = (p.q_heads + 2 * p.kv_heads) * hd, cache_row = p.kv_heads * hd;
  std::vector<double> s(keys), out(hd, 0.0);
  double m = -1e300, l = 0;
  for (int j = 0; j < keys; ++j) {
    double dot = 0;
    for (int d = 0; d < hd; ++d) dot += double(f(p.qkv[t * qkv_row + h * hd + d])) * f(p.k_cache[j * cache_row + kv * hd + d]);
    s[j] = dot / std::sqrt(double(hd));
    m = std::max(m, s[j]);
  }
  for (int j = 0; j < keys; ++j) l += std::exp(s[j] - m);
  for (int j = 0; j < keys; ++j)
    for (int d = 0; d < hd; ++d) out[d] += std::exp(s[j] - m) / l * f(p.v_cache[j * cache_row + kv * hd + d]);
  return out;
}

TEST(AttentionCpu, SingleKeyReturnsItsValue) {
  Rng rng(1);
  AttnProblem p = make_attn(1, 0, 2, 1, 8, rng);
  ASSERT_TRUE(cpu::attention(p.args()).ok());
  for (int h = 0; h < 2; ++h)
    for (int d = 0; d < 8; ++d) EXPECT_EQ(p.out[h * 8 + d].bits, p.v_cache[d].bits);
}

TEST(AttentionCpu, MatchesTextbookSoftmaxWithCausalMaskAndGqa) {
  Rng rng(2);
  // Rows past the last query's position hold NaN: reading them (a broken mask) poisons the output.
  AttnProblem p = make_attn(4, 3, 6, 2, 16, rng, /*extra_rows=*/3);
  for (std::size_t i = static_cast<std::size_t>(p.start_pos + p.n) * 2 * 16; i < p.k_cache.size(); ++i)
    p.k_cache[i] = p.v_cache[i] = bf16{0x7fc0};
  ASSERT_TRUE(cpu::attention(p.args()).ok());
  for (int t = 0; t < p.n; ++t)
    for (int h = 0; h < 6; ++h) {
      const auto want = reference_attention(p, t, h);
      for (int d = 0; d < 16; ++d)
        expect_near_rel(f(p.out[(t * 6 + h) * 16 + d]), want[d], 1, 1e-5, "t " + std::to_string(t) + " h " + std::to_string(h));
    }
}

TEST(AttentionCpu, FutureKeysAreMasked) {
  // Query t = 0 at position 0 sees only key 0, whatever keys 1.. hold.
  Rng rng(4);
  AttnProblem p = make_attn(3, 0, 1, 1, 4, rng);
  for (int d = 0; d < 4; ++d) p.k_cache[4 + d] = p.k_cache[8 + d] = b(100.0);  // huge scores if seen
  ASSERT_TRUE(cpu::attention(p.args()).ok());
  for (int d = 0; d < 4; ++d) EXPECT_EQ(p.out[d].bits, p.v_cache[d].bits);
  // Query 1 sees keys 0 and 1; with key 1's huge score it returns (almost exactly) v_1.
  const auto want = reference_attention(p, 1, 0);
  for (int d = 0; d < 4; ++d) expect_near_rel(f(p.out[4 + d]), want[d], 1, 1e-6, "query 1");
}

TEST(AttentionCpu, GqaHeadMapping) {
  // kv head k has the constant value vector (k + 1): q head h must return h / group + 1.
  Rng rng(6);
  const int qh = 8, kvh = 2, hd = 8;
  AttnProblem p = make_attn(2, 5, qh, kvh, hd, rng);
  for (int j = 0; j < 7; ++j)
    for (int k = 0; k < kvh; ++k)
      for (int d = 0; d < hd; ++d) p.v_cache[(j * kvh + k) * hd + d] = b(k + 1);
  ASSERT_TRUE(cpu::attention(p.args()).ok());
  for (int t = 0; t < 2; ++t)
    for (int h = 0; h < qh; ++h)
      for (int d = 0; d < hd; ++d) EXPECT_EQ(f(p.out[(t * qh + h) * hd + d]), float(h / 4 + 1)) << "q head " << h;
}

// ---- SiLU * up, add, embed, lm_head ----

TEST(LayerMathCpu, ExpF32IsAccurate) {
  for (double x = -87.0; x < 88.7; x += 0.0137) {
    const float got = math::exp_f32(static_cast<float>(x));
    const double want = std::exp(static_cast<double>(static_cast<float>(x)));
    ASSERT_LE(std::fabs(got - want), 3e-7 * want) << "exp(" << x << ")";  // a few fp32 ulps
  }
  EXPECT_EQ(math::exp_f32(0.0f), 1.0f);
  EXPECT_EQ(math::exp_f32(-100.0f), 0.0f);
  EXPECT_TRUE(std::isinf(math::exp_f32(89.0f)));
  EXPECT_TRUE(std::isnan(math::exp_f32(std::numeric_limits<float>::quiet_NaN())));
}

TEST(SiluMulCpu, MatchesFormula) {
  Rng rng(8);
  const int n = 3, inter = 40;
  std::vector<bf16> gu = random_bf16(static_cast<std::size_t>(n) * 2 * inter, rng, 4.0), out(n * inter);
  gu[0] = b(-100.0), gu[1] = b(100.0), gu[2] = b(0.0);
  ASSERT_TRUE(cpu::silu_mul({gu.data(), out.data(), n, inter}).ok());
  for (int t = 0; t < n; ++t)
    for (int i = 0; i < inter; ++i) {
      const double g = f(gu[t * 2 * inter + i]), u = f(gu[t * 2 * inter + inter + i]);
      expect_near_rel(f(out[t * inter + i]), g / (1 + std::exp(-g)) * u, 2, 1e-30, "element " + std::to_string(i));
    }
  EXPECT_EQ(f(out[2]), 0.0f);
}

TEST(AddCpu, RoundsTheSumToBf16) {
  std::vector<bf16> x = {b(1.0), b(256.0), b(-3.5)}, y = {b(0.5), b(1.0), b(3.5)};
  ASSERT_TRUE(cpu::add({x.data(), y.data(), 3}).ok());
  EXPECT_EQ(f(x[0]), 1.5f);
  EXPECT_EQ(f(x[1]), 256.0f);  // 257 is halfway between 256 and 258: ties to even
  EXPECT_EQ(f(x[2]), 0.0f);
}

TEST(EmbedCpu, CopiesRowsAndRejectsBadIds) {
  Rng rng(9);
  const int vocab = 5, hidden = 6;
  const std::vector<bf16> table = random_bf16(vocab * hidden, rng);
  std::vector<std::int32_t> tokens = {4, 0, 4};
  std::vector<bf16> out(3 * hidden);
  ASSERT_TRUE(cpu::embed({tokens.data(), table.data(), out.data(), 3, vocab, hidden}).ok());
  for (int t = 0; t < 3; ++t)
    for (int i = 0; i < hidden; ++i) EXPECT_EQ(out[t * hidden + i].bits, table[tokens[t] * hidden + i].bits);
  tokens[1] = 5;
  const Status s = cpu::embed({tokens.data(), table.data(), out.data(), 3, vocab, hidden});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("position 1"), std::string::npos) << s.message();
}

TEST(LmHeadCpu, MatchesDoubleDotProducts) {
  Rng rng(10);
  const int n = 2, hidden = 100, vocab = 37;
  const std::vector<bf16> x = random_bf16(n * hidden, rng), w = random_bf16(vocab * hidden, rng, 0.05);
  std::vector<float> logits(n * vocab);
  ASSERT_TRUE(cpu::lm_head({x.data(), w.data(), logits.data(), n, hidden, vocab}).ok());
  for (int t = 0; t < n; ++t)
    for (int v = 0; v < vocab; ++v) {
      double dot = 0, mag = 0;
      for (int h = 0; h < hidden; ++h) {
        dot += double(f(x[t * hidden + h])) * f(w[v * hidden + h]);
        mag += std::fabs(double(f(x[t * hidden + h])) * f(w[v * hidden + h]));
      }
      EXPECT_NEAR(logits[t * vocab + v], dot, 1e-6 * mag);
    }
}

// The largest logit, the first of equal ones; NaN never; written as the next step's token and
// position and into the host ring at the position.
TEST(GreedyTokenCpu, ChoosesTheFirstLargestAndAdvancesTheStep) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  struct Case {
    std::vector<float> logits;
    int token;
  };
  const std::vector<Case> cases = {{{1.f, 3.f, 2.f}, 1},        {{3.f, 1.f, 3.f}, 0},
                                   {{nan, 1.f, nan, 2.f}, 3},   {{nan, nan}, 0},
                                   {{-inf, -inf, -5.f}, 2},     {{-inf, -inf}, 0},
                                   {{0.f, -0.f, 0.f}, 0},       {{nan, inf, 7.f, inf}, 1}};
  for (const Case& c : cases) {
    std::int32_t step[2] = {-1, 13};
    std::vector<std::int32_t> ring(4, -1);
    ASSERT_TRUE(cpu::greedy_token({c.logits.data(), static_cast<int>(c.logits.size()), step, ring.data(), 4}).ok());
    EXPECT_EQ(step[0], c.token);
    EXPECT_EQ(step[1], 14);
    EXPECT_EQ(ring, (std::vector<std::int32_t>{-1, c.token, -1, -1}));  // 13 % 4
  }
  std::int32_t step[2] = {0, 0};
  const float one = 1.f;
  EXPECT_NE(cpu::greedy_token({&one, 0, step, nullptr, 0}).message().find("vocab"), std::string::npos);
  EXPECT_NE(cpu::greedy_token({&one, 1, nullptr, nullptr, 0}).message().find("step"), std::string::npos);
  EXPECT_NE(cpu::greedy_token({&one, 1, step, step, 0}).message().find("ring"), std::string::npos);
  ASSERT_TRUE(cpu::greedy_token({&one, 1, step, nullptr, 0}).ok());  // no ring
  EXPECT_EQ(step[1], 1);
}

// ---- fused ops: bit for bit the unfused chains ----

using testing::expect_same_bits;

// Rows of very different magnitudes (residual streams), with an all-zero 128-group in row 1.
std::vector<bf16> residual_rows(int rows, int dim, Rng& rng) {
  std::vector<bf16> x(static_cast<std::size_t>(rows) * dim);
  for (int r = 0; r < rows; ++r) {
    const double scale = std::pow(10.0, rng.uniform(-2, 3));
    for (int i = 0; i < dim; ++i) x[static_cast<std::size_t>(r) * dim + i] = b(rng.normal() * scale);
  }
  if (rows > 1)
    for (int i = 0; i < std::min(dim, 128); ++i) x[dim + i] = b(0.0);
  return x;
}

TEST(RmsNormQuantizeCpu, EqualsAddThenRmsNormThenQuantize) {
  for (int dim : {16, 144, 400, 1024, 2064, 5120})
    for (int rows : {1, 2, 3, 17})
      for (bool with_residual : {false, true})
        for (bool with_out : {false, true}) {
          Rng rng(1000003ull * dim + 31 * rows + 2 * with_residual + with_out);
          const int groups = (dim + 127) / 128;
          const std::size_t count = static_cast<std::size_t>(rows) * dim;
          const std::vector<bf16> x0 = residual_rows(rows, dim, rng), y = random_bf16(count, rng, 3.0);
          const std::vector<bf16> w = random_bf16(dim, rng, 0.5);
          // The chain.
          std::vector<bf16> x_want = x0, h_want(count);
          std::vector<fp8_e4m3> q_want(count);
          std::vector<float> s_want(static_cast<std::size_t>(rows) * groups);
          if (with_residual) {
            ASSERT_TRUE(cpu::add({x_want.data(), y.data(), count}).ok());
          }
          ASSERT_TRUE(cpu::rmsnorm({x_want.data(), w.data(), h_want.data(), rows, dim, dim, dim, 1e-6f}).ok());
          ASSERT_TRUE(cpu::quantize_per_token_group({h_want.data(), q_want.data(), s_want.data(), rows, dim}).ok());
          // The fused op, outputs poisoned.
          std::vector<bf16> x_got = x0, h_got(count, bf16{0xffff});
          std::vector<fp8_e4m3> q_got(count, fp8_e4m3{0x7f});
          std::vector<float> s_got(s_want.size(), std::numeric_limits<float>::quiet_NaN());
          const RmsNormQuantizeArgs args{x_got.data(), with_residual ? y.data() : nullptr, w.data(),
                                         with_out ? h_got.data() : nullptr, q_got.data(), s_got.data(), rows, dim,
                                         1e-6f};
          ASSERT_TRUE(cpu::rmsnorm_quantize(args).ok());
          const std::string what = "dim " + std::to_string(dim) + " rows " + std::to_string(rows) +
                                   (with_residual ? " +residual" : "") + (with_out ? " +out" : "");
          expect_same_bits(x_got, x_want, what + ": x");
          expect_same_bits(q_got, q_want, what + ": codes");
          expect_same_bits(s_got, s_want, what + ": scales");
          if (with_out) expect_same_bits(h_got, h_want, what + ": normed rows");
          // Normed rows only (no quantization), as the MoE router takes them.
          if (with_out) {
            std::vector<bf16> x_only = x0, h_only(count, bf16{0xffff});
            ASSERT_TRUE(cpu::rmsnorm_quantize({x_only.data(), with_residual ? y.data() : nullptr, w.data(),
                                               h_only.data(), nullptr, nullptr, rows, dim, 1e-6f})
                            .ok());
            expect_same_bits(x_only, x_want, what + ": x (no quantization)");
            expect_same_bits(h_only, h_want, what + ": normed rows (no quantization)");
          }
        }
}

TEST(SiluMulQuantizeCpu, EqualsSiluMulThenQuantize) {
  for (int inter : {16, 144, 400, 768, 3072, 9728})
    for (int n : {1, 2, 3, 17}) {
      Rng rng(7919ull * inter + n);
      const int groups = (inter + 127) / 128;
      std::vector<bf16> gu = random_bf16(static_cast<std::size_t>(n) * 2 * inter, rng, 3.0);
      gu[0] = b(-95.0), gu[1] = b(95.0), gu[2] = b(0.0);
      std::vector<bf16> act(static_cast<std::size_t>(n) * inter);
      std::vector<fp8_e4m3> q_want(act.size()), q_got(act.size(), fp8_e4m3{0x7f});
      std::vector<float> s_want(static_cast<std::size_t>(n) * groups),
          s_got(s_want.size(), std::numeric_limits<float>::quiet_NaN());
      ASSERT_TRUE(cpu::silu_mul({gu.data(), act.data(), n, inter}).ok());
      ASSERT_TRUE(cpu::quantize_per_token_group({act.data(), q_want.data(), s_want.data(), n, inter}).ok());
      ASSERT_TRUE(cpu::silu_mul_quantize({gu.data(), q_got.data(), s_got.data(), n, inter}).ok());
      const std::string what = "inter " + std::to_string(inter) + " n " + std::to_string(n);
      expect_same_bits(q_got, q_want, what + ": codes");
      expect_same_bits(s_got, s_want, what + ": scales");
    }
}

TEST(FusedOpsCpuArgs, BadArgumentsAreErrors) {
  std::vector<bf16> x(64), w(32);
  std::vector<fp8_e4m3> q(64);
  std::vector<float> s(2);
  Status st = cpu::rmsnorm_quantize({x.data(), nullptr, w.data(), nullptr, q.data(), s.data(), 2, 24, 1e-6f});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("multiple of 16"), std::string::npos) << st.message();
  st = cpu::rmsnorm_quantize({x.data(), nullptr, w.data(), nullptr, nullptr, nullptr, 2, 32, 1e-6f});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("no output"), std::string::npos) << st.message();
  st = cpu::rmsnorm_quantize({x.data(), nullptr, w.data(), nullptr, q.data(), nullptr, 2, 32, 1e-6f});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("scales"), std::string::npos) << st.message();
  st = cpu::rmsnorm_quantize({x.data(), nullptr, w.data(), x.data(), nullptr, nullptr, 2, 32, 1e-6f});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("alias"), std::string::npos) << st.message();
  EXPECT_FALSE(cpu::rmsnorm_quantize({x.data(), nullptr, nullptr, nullptr, q.data(), s.data(), 2, 32, 1e-6f}).ok());
  EXPECT_TRUE(cpu::rmsnorm_quantize({nullptr, nullptr, nullptr, nullptr, q.data(), s.data(), 0, 32, 1e-6f}).ok());
  st = cpu::silu_mul_quantize({x.data(), q.data(), s.data(), 1, 8});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("multiple of 16"), std::string::npos) << st.message();
  EXPECT_FALSE(cpu::silu_mul_quantize({x.data(), nullptr, s.data(), 1, 32}).ok());
  EXPECT_TRUE(cpu::silu_mul_quantize({nullptr, nullptr, nullptr, 0, 32}).ok());
}

// ---- a position read from memory (start_pos_ptr) ----

TEST(StartPosPtrCpu, QkNormRopeAndAttentionReadThePositionFromMemory) {
  Rng rng(77);
  const int q_heads = 4, kv_heads = 2, hd = 8, capacity = 12, pos = 5;
  const std::size_t row = static_cast<std::size_t>(q_heads + 2 * kv_heads) * hd, cache_row = kv_heads * hd;
  const std::vector<bf16> qkv0 = random_bf16(row, rng), q_norm = random_bf16(hd, rng), k_norm = random_bf16(hd, rng);
  const std::vector<bf16> cache0 = random_bf16(capacity * cache_row, rng);
  const std::vector<std::int32_t> table = testing::contiguous_table(capacity, kTestPage);
  const std::int32_t* bt = table.data();
  // By value.
  std::vector<bf16> qkv_a = qkv0, k_a = cache0, v_a = cache0, out_a(q_heads * hd);
  ASSERT_TRUE(cpu::qk_norm_rope({qkv_a.data(), q_norm.data(), k_norm.data(), k_a.data(), v_a.data(), bt, kTestPage, 1,
                                 pos, capacity, q_heads, kv_heads, hd, 1e-6f, 1e6f})
                  .ok());
  ASSERT_TRUE(cpu::attention({qkv_a.data(), k_a.data(), v_a.data(), bt, kTestPage, out_a.data(), 1, pos, capacity,
                              q_heads, kv_heads, hd, 0.3f})
                  .ok());
  // From memory, with the largest start_pos as the bound.
  const int at = pos;
  std::vector<bf16> qkv_b = qkv0, k_b = cache0, v_b = cache0, out_b(q_heads * hd);
  QkNormRopeArgs rope{qkv_b.data(), q_norm.data(), k_norm.data(), k_b.data(), v_b.data(), bt, kTestPage, 1,
                      capacity - 1, capacity, q_heads, kv_heads, hd, 1e-6f, 1e6f};
  rope.start_pos_ptr = &at;
  ASSERT_TRUE(cpu::qk_norm_rope(rope).ok());
  AttentionArgs attn{qkv_b.data(), k_b.data(), v_b.data(), bt, kTestPage, out_b.data(), 1, capacity - 1, capacity,
                     q_heads, kv_heads, hd, 0.3f};
  attn.start_pos_ptr = &at;
  ASSERT_TRUE(cpu::attention(attn).ok());
  expect_same_bits(qkv_b, qkv_a, "qkv");
  expect_same_bits(k_b, k_a, "k cache");
  expect_same_bits(v_b, v_a, "v cache");
  expect_same_bits(out_b, out_a, "attention output");
  // A position beyond the bound is refused.
  const int beyond = capacity;
  rope.start_pos_ptr = &beyond;
  const Status s = cpu::qk_norm_rope(rope);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("start_pos_ptr"), std::string::npos) << s.message();
}

// AttentionArgs::rope (decode): the op's own qk_norm_rope gives the caches and output of
// qk_norm_rope followed by attention; a rope that describes another call, or n != 1, is refused.
TEST(FusedRopeCpu, AttentionWithRopeEqualsQkNormRopeThenAttention) {
  Rng rng(91);
  const int q_heads = 4, kv_heads = 2, hd = 8, capacity = 12;
  const std::size_t row = static_cast<std::size_t>(q_heads + 2 * kv_heads) * hd, cache_row = kv_heads * hd;
  const std::vector<bf16> qkv0 = random_bf16(row, rng), q_norm = random_bf16(hd, rng), k_norm = random_bf16(hd, rng);
  const std::vector<bf16> cache0 = random_bf16(capacity * cache_row, rng);
  const std::vector<std::int32_t> table = testing::contiguous_table(capacity, kTestPage);
  for (int pos : {0, 5, capacity - 1}) {
    std::vector<bf16> qkv_a = qkv0, k_a = cache0, v_a = cache0, out_a(q_heads * hd);
    const QkNormRopeArgs rope_a{qkv_a.data(), q_norm.data(), k_norm.data(), k_a.data(), v_a.data(), table.data(),
                                kTestPage,    1,             pos,           capacity,   q_heads,    kv_heads,
                                hd,           1e-6f,         1e6f};
    ASSERT_TRUE(cpu::qk_norm_rope(rope_a).ok());
    ASSERT_TRUE(cpu::attention({qkv_a.data(), k_a.data(), v_a.data(), table.data(), kTestPage, out_a.data(), 1, pos,
                                capacity, q_heads, kv_heads, hd, 0.3f})
                    .ok());
    std::vector<bf16> qkv_b = qkv0, k_b = cache0, v_b = cache0, out_b(q_heads * hd);
    QkNormRopeArgs rope_b = rope_a;
    rope_b.qkv = qkv_b.data(), rope_b.k_cache = k_b.data(), rope_b.v_cache = v_b.data();
    AttentionArgs attn{qkv_b.data(), k_b.data(), v_b.data(), table.data(), kTestPage, out_b.data(), 1, pos, capacity,
                       q_heads,      kv_heads,   hd,         0.3f};
    attn.rope = &rope_b;
    ASSERT_TRUE(cpu::attention(attn).ok());
    const std::string what = "position " + std::to_string(pos);
    expect_same_bits(k_b, k_a, what + " k cache");
    expect_same_bits(v_b, v_a, what + " v cache");
    expect_same_bits(out_b, out_a, what + " attention output");

    // Another call's rope, or more than one token: refused, nothing written.
    std::vector<bf16> k_c = cache0, out_c(2 * q_heads * hd, bf16{0x7fc1});
    QkNormRopeArgs other = rope_b;
    other.k_cache = k_c.data();
    attn.rope = &other;
    Status s = cpu::attention(attn);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("same token"), std::string::npos) << s.message();
    expect_same_bits(k_c, cache0, what + " k cache of the refused call");
    std::vector<bf16> qkv2(2 * row);
    QkNormRopeArgs two = rope_b;
    two.qkv = qkv2.data(), two.n = 2, two.start_pos = std::min(pos, capacity - 2);
    AttentionArgs attn2 = attn;
    attn2.qkv = qkv2.data(), attn2.n = 2, attn2.start_pos = two.start_pos, attn2.out = out_c.data(), attn2.rope = &two;
    s = cpu::attention(attn2);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("n = 1"), std::string::npos) << s.message();
  }
}

// ---- the paged cache: block tables ----

// qk_norm_rope writing through a shuffled block table into a larger pool leaves the pool exactly as
// the contiguous cache scattered through that table (written rows where the table says, every other
// row untouched), and attention reading through it gives the contiguous result bit for bit.
// Unused pool rows hold NaN, which would poison any output that read them. Page sizes 1 (a page
// per row), 3 (pages that do not divide the lengths), 4, and 64 (the engine's, larger than the
// sequence: one page).
TEST(PagedCacheCpu, ShuffledBlockTableGivesTheContiguousBits) {
  for (int page : {1, 3, 4, 64})
    for (const auto& [start, n] : {std::pair{37, 9}, std::pair{0, 13}, std::pair{12, 1}}) {
      Rng rng(100ull * page + start);
      const int q_heads = 6, kv_heads = 2, hd = 16, rows = start + n, width = kv_heads * hd;
      const int pool_pages = 2 * ceil_div(rows, page) + 1;
      const std::size_t row = static_cast<std::size_t>(q_heads + 2 * kv_heads) * hd;
      const std::vector<bf16> qkv0 = random_bf16(n * row, rng, 2.0);
      const std::vector<bf16> qn = random_bf16(hd, rng), kn = random_bf16(hd, rng);
      // The prefix's rows are random; rows start .. rows - 1 are garbage that qk_norm_rope overwrites.
      std::vector<bf16> k = random_bf16(static_cast<std::size_t>(rows) * width, rng);
      std::vector<bf16> v = random_bf16(static_cast<std::size_t>(rows) * width, rng);
      const std::vector<std::int32_t> contiguous = testing::contiguous_table(rows, page);
      const std::vector<std::int32_t> shuffled = testing::shuffled_table(rows, page, pool_pages, rng);
      const bf16 unused{0x7fc1};
      std::vector<bf16> k_pool = testing::scatter_rows(k, rows, width, shuffled, page, pool_pages, unused);
      std::vector<bf16> v_pool = testing::scatter_rows(v, rows, width, shuffled, page, pool_pages, unused);
      const std::string what = "page " + std::to_string(page) + " start " + std::to_string(start) + " n " +
                               std::to_string(n);

      std::vector<bf16> qkv_a = qkv0, qkv_b = qkv0;
      ASSERT_TRUE(cpu::qk_norm_rope({qkv_a.data(), qn.data(), kn.data(), k.data(), v.data(), contiguous.data(), page,
                                     n, start, rows, q_heads, kv_heads, hd, 1e-6f, 1e6f})
                      .ok());
      ASSERT_TRUE(cpu::qk_norm_rope({qkv_b.data(), qn.data(), kn.data(), k_pool.data(), v_pool.data(), shuffled.data(),
                                     page, n, start, rows, q_heads, kv_heads, hd, 1e-6f, 1e6f})
                      .ok());
      expect_same_bits(qkv_b, qkv_a, what + ": qkv");
      expect_same_bits(k_pool, testing::scatter_rows(k, rows, width, shuffled, page, pool_pages, unused),
                       what + ": k pool");
      expect_same_bits(v_pool, testing::scatter_rows(v, rows, width, shuffled, page, pool_pages, unused),
                       what + ": v pool");

      std::vector<bf16> out_a(static_cast<std::size_t>(n) * q_heads * hd), out_b(out_a.size(), bf16{0xffff});
      ASSERT_TRUE(cpu::attention({qkv_a.data(), k.data(), v.data(), contiguous.data(), page, out_a.data(), n, start,
                                  rows, q_heads, kv_heads, hd, 0.25f})
                      .ok());
      ASSERT_TRUE(cpu::attention({qkv_b.data(), k_pool.data(), v_pool.data(), shuffled.data(), page, out_b.data(), n,
                                  start, rows, q_heads, kv_heads, hd, 0.25f})
                      .ok());
      expect_same_bits(out_b, out_a, what + ": attention output");
    }
}

TEST(PagedCacheCpu, BadPagingArgumentsAreErrors) {
  Rng rng(21);
  QkProblem p = make_qk(2, 3, 8, 2, 1, 8, rng);
  QkNormRopeArgs rope = p.args();
  rope.page_size = 0;
  Status s = cpu::qk_norm_rope(rope);
  EXPECT_NE(s.message().find("page_size = 0 must be >= 1"), std::string::npos) << s.message();
  rope = p.args();
  rope.block_table = nullptr;
  s = cpu::qk_norm_rope(rope);
  EXPECT_NE(s.message().find("block_table is a null pointer"), std::string::npos) << s.message();

  AttnProblem a = make_attn(2, 3, 2, 1, 8, rng);
  AttentionArgs attn = a.args();
  attn.page_size = -4;
  s = cpu::attention(attn);
  EXPECT_NE(s.message().find("page_size = -4 must be >= 1"), std::string::npos) << s.message();
  attn = a.args();
  attn.block_table = nullptr;
  s = cpu::attention(attn);
  EXPECT_NE(s.message().find("block_table is a null pointer"), std::string::npos) << s.message();
  attn = a.args();
  attn.cache_capacity = 4;  // the table maps fewer rows than start_pos + n = 5
  s = cpu::attention(attn);
  EXPECT_NE(s.message().find("start_pos + n = 5 exceeds cache_capacity = 4"), std::string::npos) << s.message();
  attn.n = 0;  // nothing to read: no table needed
  attn.block_table = nullptr;
  attn.start_pos = 0;
  EXPECT_TRUE(cpu::attention(attn).ok());
}

// ---- bad arguments ----

TEST(LayerOpsCpuArgs, BadArgumentsAreErrors) {
  Rng rng(12);
  QkProblem p = make_qk(2, 3, 4, 4, 2, 8, rng);  // start_pos + n = 5 > capacity 4
  Status s = cpu::qk_norm_rope(p.args());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cache_capacity"), std::string::npos) << s.message();
  p.capacity = 8;
  p.table.clear();
  p.k_cache.resize(8 * 2 * 8), p.v_cache.resize(8 * 2 * 8);
  p.q_heads = 3;  // not a multiple of kv_heads
  s = cpu::qk_norm_rope(p.args());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("multiple of kv_heads"), std::string::npos) << s.message();
  p.q_heads = 4, p.head_dim = 7;
  EXPECT_FALSE(cpu::qk_norm_rope(p.args()).ok());

  std::vector<bf16> x(8), w(8);
  s = cpu::rmsnorm({x.data(), nullptr, x.data(), 1, 8, 8, 8, 1e-6f});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("weight"), std::string::npos) << s.message();
  EXPECT_FALSE(cpu::rmsnorm({x.data(), w.data(), x.data(), 1, 8, 4, 8, 1e-6f}).ok());  // stride < dim
  EXPECT_FALSE(cpu::rmsnorm({x.data(), w.data(), x.data(), -1, 8, 8, 8, 1e-6f}).ok());
  EXPECT_TRUE(cpu::rmsnorm({nullptr, nullptr, nullptr, 0, 8, 8, 8, 1e-6f}).ok());  // nothing to do

  const std::int32_t page0[1] = {0};
  EXPECT_FALSE(cpu::attention({nullptr, nullptr, nullptr, page0, 4, nullptr, 1, 0, 4, 2, 1, 8, 0.3f}).ok());
  EXPECT_FALSE(cpu::attention({x.data(), x.data(), x.data(), page0, 4, x.data(), 1, -1, 4, 2, 1, 8, 0.3f}).ok());
  EXPECT_TRUE(cpu::attention({nullptr, nullptr, nullptr, nullptr, 4, nullptr, 0, 0, 0, 2, 1, 8, 0.3f}).ok());
  EXPECT_FALSE(cpu::silu_mul({x.data(), x.data(), 1, 0}).ok());
  EXPECT_FALSE(cpu::add({nullptr, x.data(), 4}).ok());
  EXPECT_FALSE(cpu::lm_head({x.data(), w.data(), nullptr, 1, 8, 1}).ok());
  EXPECT_FALSE(cpu::embed({nullptr, w.data(), x.data(), 1, 1, 8}).ok());
}

}  // namespace
}  // namespace fp8lm
