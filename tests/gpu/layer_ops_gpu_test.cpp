// The layer-op kernels against their CPU twins on fresh random inputs, outputs poisoned (NaN)
// first so unwritten elements are caught. Shapes from the Qwen3 models plus tiny and ragged ones.
//  - embed, add, silu_mul, rmsnorm, qk_norm_rope: bit for bit (the twins reproduce the kernels'
//    rounding steps and, for the norms, their summation order; see fp8lm/layer_ops.h).
//  - rmsnorm_quantize, silu_mul_quantize (the fused ops): bit for bit, every output (x after the
//    add, bf16 normed rows, FP8 codes, scales); the CPU tests show the twins equal the unfused
//    chains, so the kernels do too.
//  - the KV cache is paged: qk_norm_rope and attention (with and without key splits) get a shuffled block table
//    over a pool larger than the sequence with its unused rows poisoned; qk_norm_rope's pool must
//    equal the twin's bit for bit (same table), attention is compared with the twin on the
//    contiguous cache (tests/cpu/layer_ops_test.cpp shows the twin gives the same bits either way).
//  - start_pos_ptr (the position read from device memory, for CUDA graphs): qk_norm_rope and
//    attention give the same bits as with the position by value, attention also when launched
//    for a much longer context (more key-split CTAs than the position needs).
//  - attention's quantized copy of its output (AttentionArgs::q8, the o projection's input) is bit
//    for bit the 1x128 quantization of the kernel's own bf16 output, in every attention case.
//  - attention: the twin sums in another order and uses std::exp where the kernel uses exp2f, so
//    the fp32 values before the final bf16 rounding differ by ~1e-6 relative; each output may
//    then round to the neighbouring bf16: |got - want| <= 2^-7 |want| (>= 1 bf16 ulp) + 1e-4 max|v|
//    (the absolute part covers outputs near zero from cancellation in P.V), and the relative
//    Frobenius error of the whole output stays below 1e-3 (a few flipped roundings).
//  - flash prefill attention (kernels/attention/flash_attention.cu) on top of that: at most 2% of
//    the outputs differ from the twin's and the relative Frobenius error is below 5e-4. A model of
//    the kernel's arithmetic on the CPU (tests/cpu/flash_precision_test.cpp; 300 and 2000 keys, q
//    scale 1 and 6) gives 0.09-0.16% differing outputs and 6e-5-9e-5 with P split into bf16 hi + lo,
//    and 12-40% and 9e-4-2.5e-3 with P rounded to bf16 alone: these bounds catch a lost P_lo.
//  - lm_head: cuBLASLt (or the warp-per-row kernel) and the twin accumulate in fp32 in other orders: |got - want| <=
//    1e-5 * sum_h |x_h w_h| (fp32 rounding grows ~sqrt(hidden) * 2^-24 relative to that sum;
//    1e-5 is ~10x the worst seen in practice at hidden 5120 and far below any real error).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "attention/flash_attention.h"
#include "fp8lm/cpu.h"
#include "fp8lm/device_buffer.h"
#include "fp8lm/layer_ops.h"
#include "fp8lm/qwen3_models.h"
#include "fp8lm/random.h"
#include "bit_compare.h"
#include "paged_cache.h"

namespace fp8lm {
namespace {

constexpr int kHd = kQwen3HeadDim;
constexpr float kEps = 1e-6f;
constexpr float kTheta = 1e6f;
constexpr std::uint16_t kPoison = 0xffff;  // bf16 NaN
constexpr int kPage = kKvPageMultiple;      // the engine's page size (kKvPageSize)
constexpr int kSparePages = 3;              // pool pages beyond the sequence's: never read

float f(bf16 v) { return bf16_to_float(v); }

using testing::expect_same_bits;

DeviceBuffer<bf16> poisoned(std::size_t count) {
  DeviceBuffer<bf16> b(count);
  b.fill_bytes(0xFF);
  return b;
}

// ---- embed ----

TEST(LayerOpsGpu, EmbedBitExactAndNaNRowForBadId) {
  Rng rng(1);
  for (int hidden : {1024, 2560, 5120}) {
    const int vocab = 1000, n = 17;
    const auto table = random_bf16(static_cast<std::size_t>(vocab) * hidden, rng);
    std::vector<std::int32_t> tokens(n);
    for (auto& t : tokens) t = static_cast<std::int32_t>(rng.next() % vocab);
    tokens[3] = vocab - 1, tokens[4] = 0;
    DeviceBuffer<bf16> d_table(table);
    DeviceBuffer<std::int32_t> d_tokens(tokens);
    auto d_out = poisoned(static_cast<std::size_t>(n) * hidden);
    ASSERT_TRUE(embed({d_tokens.get(), d_table.get(), d_out.get(), n, vocab, hidden}, nullptr).ok());
    std::vector<bf16> want(static_cast<std::size_t>(n) * hidden);
    ASSERT_TRUE(cpu::embed({tokens.data(), table.data(), want.data(), n, vocab, hidden}).ok());
    expect_same_bits(d_out.download(), want, "embed hidden " + std::to_string(hidden));

    tokens[5] = vocab;  // out of range: the kernel writes a NaN row instead of reading past the table
    d_tokens.upload(tokens);
    ASSERT_TRUE(embed({d_tokens.get(), d_table.get(), d_out.get(), n, vocab, hidden}, nullptr).ok());
    const auto got = d_out.download();
    for (int i = 0; i < hidden; ++i) ASSERT_TRUE(std::isnan(f(got[5 * hidden + i])));
  }
}

// ---- greedy_token ----

// The kernel against its twin on random logits with planted ties at the maximum, NaNs and -inf,
// for vocabularies that do and do not take four-wide loads (vocab % 4, a logits pointer off 16
// bytes), Qwen3's among them; step and the page-locked ring poisoned before, and the ring written
// by the kernel at the position modulo its size.
TEST(LayerOpsGpu, GreedyTokenMatchesTwin) {
  Rng rng(11);
  std::int32_t* ring = nullptr;
  ASSERT_EQ(cudaMallocHost(reinterpret_cast<void**>(&ring), 8 * sizeof(std::int32_t)), cudaSuccess);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (const int vocab : {1, 2, 3, 5, 1000, 4097, 151936, 151937}) {
    for (const int offset : {0, 1}) {
      for (const int plant : {0, 1, 2, 3}) {
        std::vector<float> logits(vocab + offset);
        for (float& v : logits) v = static_cast<float>(rng.normal() * 4);
        float* row = logits.data() + offset;
        const int top = static_cast<int>(rng.next() % vocab);
        if (plant == 1) {  // ties at the maximum: the first must win
          for (int i = 0; i < 4; ++i) row[rng.next() % vocab] = 100.f;
        } else if (plant == 2) {  // NaNs around and at the front, the maximum after them
          for (int i = 0; i < vocab / 3 + 1; ++i) row[rng.next() % vocab] = nan;
          row[0] = nan;
          if (vocab > 1) row[top > 0 ? top : 1] = 50.f;
        } else if (plant == 3) {  // everything -inf but one (or all of it)
          for (int i = 0; i < vocab; ++i) row[i] = -inf;
          if (vocab > 2) row[vocab - 2] = -1.f;
        }
        const std::int32_t position = 1000 + static_cast<std::int32_t>(rng.next() % 100);
        DeviceBuffer<float> d_logits(logits);
        DeviceBuffer<std::int32_t> d_step(std::vector<std::int32_t>{-7, position});
        for (int i = 0; i < 8; ++i) ring[i] = -7;
        ASSERT_TRUE(greedy_token({d_logits.get() + offset, vocab, d_step.get(), ring, 8}, nullptr).ok());
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        std::int32_t want_step[2] = {-7, position};
        std::vector<std::int32_t> want_ring(8, -7);
        ASSERT_TRUE(cpu::greedy_token({row, vocab, want_step, want_ring.data(), 8}).ok());
        const std::string what = "vocab " + std::to_string(vocab) + " offset " + std::to_string(offset) + " plant " +
                                 std::to_string(plant);
        const std::vector<std::int32_t> got_step = d_step.download();
        EXPECT_EQ(got_step[0], want_step[0]) << what;
        EXPECT_EQ(got_step[1], position + 1) << what;
        EXPECT_EQ(std::vector<std::int32_t>(ring, ring + 8), want_ring) << what;
      }
    }
  }
  cudaFreeHost(ring);
}

// ---- rmsnorm ----

struct NormCase {
  int rows, dim, extra_stride;
};

class RmsNormGpu : public ::testing::TestWithParam<NormCase> {};

TEST_P(RmsNormGpu, BitExactWithTwin) {
  const auto [rows, dim, extra] = GetParam();
  const int stride = dim + extra;
  Rng rng(101ull * rows + dim);
  std::vector<bf16> x(static_cast<std::size_t>(rows) * stride);
  for (int r = 0; r < rows; ++r) {  // rows of very different magnitudes, like residual streams
    const double scale = std::pow(10.0, rng.uniform(-2, 3));
    for (int i = 0; i < stride; ++i) x[static_cast<std::size_t>(r) * stride + i] = float_to_bf16(static_cast<float>(rng.normal() * scale));
  }
  const auto w = random_bf16(dim, rng, 0.5);
  DeviceBuffer<bf16> d_x(x), d_w(w);
  auto d_out = poisoned(static_cast<std::size_t>(rows) * dim);
  ASSERT_TRUE(rmsnorm({d_x.get(), d_w.get(), d_out.get(), rows, dim, stride, dim, kEps}, nullptr).ok());
  std::vector<bf16> want(static_cast<std::size_t>(rows) * dim);
  ASSERT_TRUE(cpu::rmsnorm({x.data(), w.data(), want.data(), rows, dim, stride, dim, kEps}).ok());
  expect_same_bits(d_out.download(), want, "rmsnorm");

  // In place on the strided buffer: the normalized rows, the gaps untouched.
  ASSERT_TRUE(rmsnorm({d_x.get(), d_w.get(), d_x.get(), rows, dim, stride, stride, kEps}, nullptr).ok());
  ASSERT_TRUE(cpu::rmsnorm({x.data(), w.data(), x.data(), rows, dim, stride, stride, kEps}).ok());
  expect_same_bits(d_x.download(), x, "rmsnorm in place");
}

INSTANTIATE_TEST_SUITE_P(Shapes, RmsNormGpu,
                         ::testing::Values(NormCase{1, 1024, 0}, NormCase{2, 2048, 0}, NormCase{3, 2560, 8},
                                           NormCase{17, 4096, 0}, NormCase{100, 5120, 0}, NormCase{1000, 4096, 2048},
                                           NormCase{5, 128, 0}, NormCase{7, 8, 16}, NormCase{4096, 1024, 0}),
                         [](const auto& info) {
                           return "rows" + std::to_string(info.param.rows) + "dim" + std::to_string(info.param.dim) +
                                  "pad" + std::to_string(info.param.extra_stride);
                         });

// ---- qk_norm_rope ----

struct QkCase {
  int q_heads, kv_heads, n, start_pos;
};

std::string qk_name(const QkCase& c) {
  return "q" + std::to_string(c.q_heads) + "kv" + std::to_string(c.kv_heads) + "n" + std::to_string(c.n) + "pos" +
         std::to_string(c.start_pos);
}

class QkNormRopeGpu : public ::testing::TestWithParam<QkCase> {};

// Through a shuffled block table into a poisoned pool: the kernel and the twin write the same rows
// with the same bits, and leave every other row of the pool poisoned.
TEST_P(QkNormRopeGpu, BitExactWithTwin) {
  const auto [qh, kvh, n, start] = GetParam();
  const int capacity = start + n + 3;  // rows on both sides of the written ones stay poisoned
  Rng rng(7ull * qh + 131ull * n + start);
  const std::size_t row = static_cast<std::size_t>(qh + 2 * kvh) * kHd;
  auto qkv = random_bf16(n * row, rng, 3.0);
  const auto q_norm = random_bf16(kHd, rng, 0.7), k_norm = random_bf16(kHd, rng, 0.7);
  const int pool_pages = ceil_div(capacity, kPage) + kSparePages;
  const auto table = testing::shuffled_table(capacity, kPage, pool_pages, rng);
  std::vector<bf16> k_pool(static_cast<std::size_t>(pool_pages) * kPage * kvh * kHd, bf16{kPoison}), v_pool = k_pool;

  DeviceBuffer<bf16> d_qkv(qkv), d_qn(q_norm), d_kn(k_norm), d_k(k_pool), d_v(v_pool);
  DeviceBuffer<std::int32_t> d_table(table);
  ASSERT_TRUE(qk_norm_rope({d_qkv.get(), d_qn.get(), d_kn.get(), d_k.get(), d_v.get(), d_table.get(), kPage, n, start,
                            capacity, qh, kvh, kHd, kEps, kTheta},
                           nullptr)
                  .ok());
  ASSERT_TRUE(cpu::qk_norm_rope({qkv.data(), q_norm.data(), k_norm.data(), k_pool.data(), v_pool.data(), table.data(),
                                 kPage, n, start, capacity, qh, kvh, kHd, kEps, kTheta})
                  .ok());
  expect_same_bits(d_qkv.download(), qkv, "qkv");
  expect_same_bits(d_k.download(), k_pool, "k pool");
  expect_same_bits(d_v.download(), v_pool, "v pool");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, QkNormRopeGpu,
    ::testing::Values(QkCase{16, 8, 1, 0}, QkCase{16, 8, 2, 1}, QkCase{32, 8, 3, 0}, QkCase{32, 8, 17, 4000},
                      QkCase{40, 8, 17, 5}, QkCase{64, 8, 1, 40959}, QkCase{32, 4, 512, 0}, QkCase{64, 4, 3, 30000},
                      QkCase{32, 8, 2048, 1000}),
    [](const auto& info) { return qk_name(info.param); });

// ---- attention ----

struct AttnCase {
  int q_heads, kv_heads, n, start_pos;
};

std::string attn_name(const AttnCase& c) {
  return "q" + std::to_string(c.q_heads) + "kv" + std::to_string(c.kv_heads) + "n" + std::to_string(c.n) + "pos" +
         std::to_string(c.start_pos);
}

// attention() itself, or one of its kernels called directly.
using AttentionLauncher = Status (*)(const AttentionArgs&, cudaStream_t);

struct AttnResult {
  double ms;            // median of a few launches after the checked one
  double rel;           // relative Frobenius error over the checked queries
  double differ_share;  // share of checked outputs whose bf16 value differs from the twin's
};

class AttentionGpu : public ::testing::TestWithParam<AttnCase> {};

// Runs the kernel on a fresh random problem, its cache paged through a shuffled block table of
// `page`-row pages into a pool whose other rows are poisoned, and compares the queries in `check`
// (all when empty) with the twin on the contiguous cache.
// The flash kernels without key splits, whatever the workspace: the one attention() would pick (the
// one-token kernel for n == 1, on sm_90 the wgmma kernel for calls of at least
// flash::kWgmmaAttentionMinRows rows), and the mma.sync kernel whatever the call.
Status flash_unsplit(const AttentionArgs& a, cudaStream_t stream) { return flash::attention(a, 1, stream); }
Status flash_unsplit_mma(const AttentionArgs& a, cudaStream_t stream) { return flash::attention_mma(a, 1, stream); }
// The wgmma kernel with P rounded to bf16 (FP8LM_FLASH_P_SPLIT=0), on sm_90 only.
Status flash_wgmma_bf16_p(const AttentionArgs& a, cudaStream_t stream) { return flash::attention_sm90(a, stream, false); }
bool on_sm90() {
  DeviceInfo device;
  return current_device(&device).ok() && device.sm_version() == 90;
}

// bf16_p: the launcher rounds P to bf16 (flash_wgmma_bf16_p), so each output may be off by up to
// 2^-9 of the largest |v| (every probability off by up to 2^-9 of itself, errors aligned) and the
// relative Frobenius error is ~1e-3 (tests/cpu/flash_precision_test.cpp); the bounds widen to that.
AttnResult run_attention_case(const AttnCase& c, std::vector<int> check, double q_scale, bool workspace = false,
                              AttentionLauncher launch = &attention, int page = kPage, bool bf16_p = false) {
  const auto [qh, kvh, n, start] = c;
  Rng rng(977ull * qh + 31ull * n + start);
  const std::size_t row = static_cast<std::size_t>(qh + 2 * kvh) * kHd, cache_row = static_cast<std::size_t>(kvh) * kHd;
  const int keys = start + n, width = static_cast<int>(cache_row);
  const auto qkv = random_bf16(n * row, rng, q_scale);
  const auto k_cache = random_bf16(keys * cache_row, rng), v_cache = random_bf16(keys * cache_row, rng);
  const float scale = static_cast<float>(1.0 / std::sqrt(double(kHd)));
  const int pool_pages = ceil_div(keys, page) + kSparePages;
  const auto table = testing::shuffled_table(keys, page, pool_pages, rng);
  DeviceBuffer<bf16> d_qkv(qkv);
  DeviceBuffer<bf16> d_k(testing::scatter_rows(k_cache, keys, width, table, page, pool_pages, bf16{kPoison}));
  DeviceBuffer<bf16> d_v(testing::scatter_rows(v_cache, keys, width, table, page, pool_pages, bf16{kPoison}));
  DeviceBuffer<std::int32_t> d_table(table);
  auto d_out = poisoned(static_cast<std::size_t>(n) * qh * kHd);
  DeviceBuffer<float> d_ws(workspace ? attention_workspace_bytes(n, qh) / sizeof(float) : 0);
  if (workspace) d_ws.fill_bytes(0xFF);
  // The quantized copy for the o projection, checked against quantizing the kernel's own bf16
  // output (bit for bit: the same 1x128 quantizer on the same values).
  DeviceBuffer<fp8_e4m3> d_q8(static_cast<std::size_t>(n) * qh * kHd);
  DeviceBuffer<float> d_q8_scales(static_cast<std::size_t>(n) * qh);
  d_q8.fill_bytes(0xFF);
  d_q8_scales.fill_bytes(0xFF);
  AttentionArgs args{d_qkv.get(), d_k.get(), d_v.get(), d_table.get(), page, d_out.get(), n, start, keys,
                     qh, kvh, kHd, scale, d_ws.get(), d_ws.bytes()};
  args.q8 = d_q8.get(), args.q8_scales = d_q8_scales.get();
  const Status status = launch(args, nullptr);
  EXPECT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const auto got = d_out.download();
  {
    std::vector<fp8_e4m3> want_q8(d_q8.size());
    std::vector<float> want_scales(d_q8_scales.size());
    EXPECT_TRUE(cpu::quantize_per_token_group({got.data(), want_q8.data(), want_scales.data(), n, qh * kHd}).ok());
    const auto got_q8 = d_q8.download();
    const auto got_scales = d_q8_scales.download();
    for (std::size_t i = 0; i < want_q8.size(); ++i)
      if (got_q8[i].bits != want_q8[i].bits) {
        ADD_FAILURE() << "q8 differs from quantizing the output at " << i;
        break;
      }
    for (std::size_t i = 0; i < want_scales.size(); ++i)
      if (std::memcmp(&got_scales[i], &want_scales[i], sizeof(float)) != 0) {
        ADD_FAILURE() << "q8 scale " << i << ": " << got_scales[i] << ", want " << want_scales[i];
        break;
      }
  }

  if (check.empty())
    for (int t = 0; t < n; ++t) check.push_back(t);
  double worst_ulps = 0, err2 = 0, ref2 = 0;
  long long differ = 0;
  float vmax = 0;
  for (const bf16 v : v_cache) vmax = std::max(vmax, std::fabs(f(v)));
  std::vector<bf16> want(static_cast<std::size_t>(qh) * kHd);
  const auto contiguous = testing::contiguous_table(keys, page);
  for (int t : check) {  // the twin for one query: n = 1 at start_pos + t, q from row t
    EXPECT_TRUE(cpu::attention({qkv.data() + t * row, k_cache.data(), v_cache.data(), contiguous.data(), page,
                                want.data(), 1, start + t, keys, qh, kvh, kHd, scale})
                    .ok());
    for (int i = 0; i < qh * kHd; ++i) {
      const float g = f(got[static_cast<std::size_t>(t) * qh * kHd + i]), w = f(want[i]);
      const double tol = 0x1.0p-7 * std::fabs(w) + (bf16_p ? 0x1.0p-9 + 1e-4 : 1e-4) * vmax;
      err2 += (double(g) - w) * (double(g) - w), ref2 += double(w) * w;
      differ += g != w;
      if (!(std::fabs(g - w) <= tol)) {
        ADD_FAILURE() << "query " << t << " head " << i / kHd << " dim " << i % kHd << ": got " << g << ", want " << w;
        return {0, 1, 1};
      }
      if (w != 0) worst_ulps = std::max(worst_ulps, std::fabs(g - w) / std::ldexp(1.0, std::ilogb(w) - 7));
    }
  }
  const double rel = std::sqrt(err2 / ref2);
  const double differ_share = double(differ) / (double(check.size()) * qh * kHd);
  EXPECT_LT(rel, bf16_p ? 5e-3 : 1e-3) << "relative Frobenius error" << (bf16_p ? ", bf16 P" : "");
  std::printf("  attention q%d kv%d n %d start %d page %d%s: max diff %.2f bf16 ulp, %.3f%% differ, rel. Frobenius "
              "%.2e over %zu queries\n",
              qh, kvh, n, start, page, workspace ? " (key splits)" : "", worst_ulps, 100 * differ_share, rel,
              check.size());

  constexpr int kTimedLaunches = 5;  // the checked launch above was the warm-up
  std::vector<float> times;
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0), cudaEventCreate(&e1);
  for (int i = 0; i < kTimedLaunches; ++i) {
    cudaEventRecord(e0);
    EXPECT_TRUE(launch(args, nullptr).ok());
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    times.push_back(ms);
  }
  cudaEventDestroy(e0), cudaEventDestroy(e1);
  std::nth_element(times.begin(), times.begin() + kTimedLaunches / 2, times.end());
  return {times[kTimedLaunches / 2], rel, differ_share};
}

TEST_P(AttentionGpu, MatchesTwin) {
  run_attention_case(GetParam(), {}, 1.0);
}

TEST_P(AttentionGpu, MatchesTwinWithPeakySoftmax) {
  run_attention_case(GetParam(), {}, 6.0);  // scores ~N(0, 36): a few keys dominate
}

TEST_P(AttentionGpu, MatchesTwinWithKeySplits) {
  run_attention_case(GetParam(), {}, 1.0, /*workspace=*/true);
  run_attention_case(GetParam(), {}, 6.0, /*workspace=*/true);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionGpu,
    ::testing::Values(AttnCase{16, 8, 1, 0}, AttnCase{16, 8, 2, 0}, AttnCase{32, 8, 3, 1}, AttnCase{40, 8, 17, 0},
                      AttnCase{64, 8, 17, 33}, AttnCase{32, 4, 5, 4000}, AttnCase{64, 4, 2, 100},
                      AttnCase{12, 4, 3, 70}, AttnCase{14, 2, 2, 9}, AttnCase{8, 8, 40, 3}, AttnCase{32, 8, 300, 0},
                      AttnCase{32, 8, 1, 1000}, AttnCase{40, 8, 2, 3000}, AttnCase{16, 8, 3, 511}, AttnCase{64, 4, 1, 20000}),
    [](const auto& info) { return attn_name(info.param); });

TEST(AttentionGpuLong, PrefillAndLongDecodeTimed) {
  // 8B-shaped 4k prefill (32 q heads, 8 kv heads): check a sample of queries, report the time.
  const double prefill_ms = run_attention_case({32, 8, 4096, 0}, {0, 1, 31, 32, 33, 1000, 2047, 4095}, 1.0).ms;
  std::printf("  attention prefill 4096 tokens, 32/8 heads: %.2f ms\n", prefill_ms);
  EXPECT_LT(prefill_ms, 500.0);
  const double chunk_ms = run_attention_case({32, 8, 512, 4000}, {0, 255, 511}, 1.0).ms;
  std::printf("  attention chunk of 512 tokens after 4000: %.2f ms\n", chunk_ms);
  const double decode_ms = run_attention_case({64, 8, 1, 40959}, {}, 1.0).ms;
  std::printf("  attention decode at position 40959, 64/8 heads: %.3f ms\n", decode_ms);
  const double split_ms = run_attention_case({64, 8, 1, 40959}, {}, 1.0, /*workspace=*/true).ms;
  std::printf("  attention decode at position 40959, 64/8 heads, key splits: %.3f ms\n", split_ms);
  const double batch_ms = run_attention_case({32, 8, 4, 8000}, {}, 1.0, /*workspace=*/true).ms;
  std::printf("  attention 4 tokens at position 8000, 32/8 heads, key splits: %.3f ms\n", batch_ms);
}

// ---- flash attention kernels (kernels/attention/flash_attention.cu, flash_sm90.cu) ----

// Queries to compare with the twin: all of a short call; of a long one the first and last 64 (the
// first and last row blocks) and every 97th in between (keeps the twin's O(n^2) work small).
std::vector<int> flash_check_queries(int n) {
  constexpr int kCheckAllUpTo = 1100, kEdge = 64, kStride = 97;
  std::vector<int> queries;
  if (n <= kCheckAllUpTo) return queries;  // empty: all
  for (int t = 0; t < n; ++t)
    if (t < kEdge || t >= n - kEdge || t % kStride == 0) queries.push_back(t);
  return queries;
}

// The flash kernel's bounds (see the top of this file: they fail if P lost its low half).
void expect_flash_precision(const AttnResult& r) {
  EXPECT_LT(r.differ_share, 0.02) << "share of outputs that differ from the twin";
  EXPECT_LT(r.rel, 5e-4) << "relative Frobenius error";
}

// P rounded to bf16: the precision model (tests/cpu/flash_precision_test.cpp) puts the relative
// Frobenius error at 0.9-2.5e-3 and 12-40% of outputs off by an ulp; a lost tile or head is ~1.
// run_attention_case(..., bf16_p = true) checks the bounds.
AttnResult run_bf16_p_case(const AttnCase& c, std::vector<int> check) {
  return run_attention_case(c, std::move(check), 1.0, false, &flash_wgmma_bf16_p, kPage, /*bf16_p=*/true);
}

class AttentionFlashGpu : public ::testing::TestWithParam<AttnCase> {};

// The flash launchers called directly without key splits (attention() splits short calls): the
// dispatching one (wgmma on sm_90 for prefill-sized calls) and the mma.sync kernel.
TEST_P(AttentionFlashGpu, MatchesTwin) {
  for (AttentionLauncher launch : {&flash_unsplit, &flash_unsplit_mma})
    expect_flash_precision(run_attention_case(GetParam(), flash_check_queries(GetParam().n), 1.0, false, launch));
  if (on_sm90())
    run_bf16_p_case(GetParam(), flash_check_queries(GetParam().n));
}

TEST_P(AttentionFlashGpu, MatchesTwinWithPeakySoftmax) {  // scores ~N(0, 36): a few keys dominate
  for (AttentionLauncher launch : {&flash_unsplit, &flash_unsplit_mma})
    expect_flash_precision(run_attention_case(GetParam(), flash_check_queries(GetParam().n), 6.0, false, launch));
}

std::vector<AttnCase> flash_cases() {
  std::vector<AttnCase> cases;
  // The 8B shape (group 4) at every length and cached prefix: ragged last row blocks (65, 100, 257,
  // 1000, 4097 tokens), prefixes that end inside a 64-key tile (37, 1000) or on its edge (0).
  for (int n : {64, 65, 100, 257, 1000, 4097})
    for (int start : {0, 37, 1000}) cases.push_back({32, 8, n, start});
  cases.push_back({32, 8, 100, 1024});  // a prefix of whole tiles
  // Every group: 1 (8/8), 2 (16/8, 0.6B/1.7B), 5 (40/8, 14B), 8 (64/8, 32B; 32/4, 30B-A3B), 16 (64/4, 235B).
  for (const auto& [qh, kvh] : {std::pair{8, 8}, {16, 8}, {40, 8}, {64, 8}, {32, 4}, {64, 4}})
    for (const auto& [n, start] : {std::pair{64, 0}, {65, 37}, {257, 1000}, {1000, 0}})
      cases.push_back({qh, kvh, n, start});
  // At the wgmma kernel's threshold (1024 rows) and just past it: ragged 128-row blocks, a
  // prefix inside a tile.
  for (const AttnCase c : {AttnCase{8, 8, 1024, 0}, AttnCase{16, 8, 520, 37}, AttnCase{64, 8, 129, 5},
                           AttnCase{40, 8, 205, 1000}})
    cases.push_back(c);
  // Fewer rows than one CTA's 64 (decode-sized calls; attention() would also split their keys).
  for (const AttnCase c : {AttnCase{8, 8, 1, 0}, AttnCase{64, 4, 3, 100}, AttnCase{40, 8, 7, 37}}) cases.push_back(c);
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionFlashGpu, ::testing::ValuesIn(flash_cases()),
                         [](const auto& info) { return attn_name(info.param); });

TEST(AttentionFlashGpuLong, EightThousandTokens) {  // through attention(), which picks the flash kernel
  const std::vector<int> check = {0, 1, 63, 64, 65, 2047, 4096, 6000, 8127, 8128, 8191};
  expect_flash_precision(run_attention_case({32, 8, 8192, 0}, check, 1.0));
  expect_flash_precision(run_attention_case({32, 8, 8192, 0}, check, 6.0));
  expect_flash_precision(run_attention_case({32, 8, 2048, 6144}, {0, 1000, 2047}, 1.0));  // a chunk after a prefix
}

TEST(AttentionFlashGpuLong, Prefill30kTimed) {  // the 8B shape; reports speed, asserts none
  const AttnCase c{32, 8, 30720, 0};
  // FLOPs = 2 (QK^T) x 2 (P.V) x head_dim x q_heads x (keys summed over queries); the split P adds
  // half again of mma work that this count leaves out.
  double keys = 0;
  for (int t = 0; t < c.n; ++t) keys += c.start_pos + t + 1;
  const double flops = 4.0 * kHd * c.q_heads * keys;
  auto report = [&](const AttnResult& r, const char* name) {
    std::printf("  flash prefill %d tokens, %d/%d heads, %s: %.2f ms, %.1f TFLOP/s (%.3g FLOPs)\n", c.n, c.q_heads,
                c.kv_heads, name, r.ms, flops / (r.ms * 1e-3) / 1e12, flops);
  };
  for (const auto& [launch, name] : {std::pair{&attention, "attention()"}, {&flash_unsplit_mma, "mma.sync kernel"}}) {
    const AttnResult r = run_attention_case(c, {0, 4097, 30719}, 1.0, false, launch);
    expect_flash_precision(r);
    report(r, name);
  }
  if (on_sm90()) {
    const AttnResult r = run_bf16_p_case(c, {0, 4097, 30719});
    report(r, "wgmma kernel, P in bf16 (no split)");
  }
}

// ---- the one-token kernel (kernels/attention/flash_decode.cu) ----

// Called directly without a key split, and through attention() with a workspace (which splits the
// keys of long contexts and merges them); attention() picks it for every n == 1 call unless
// FP8LM_FLASH_DECODE=0.
Status decode_unsplit(const AttentionArgs& a, cudaStream_t stream) { return flash::attention_decode(a, 1, stream); }

class AttentionDecodeGpu : public ::testing::TestWithParam<AttnCase> {};

TEST_P(AttentionDecodeGpu, MatchesTwin) {
  for (const double q_scale : {1.0, 6.0}) {
    expect_flash_precision(run_attention_case(GetParam(), {}, q_scale, false, &decode_unsplit));
    expect_flash_precision(run_attention_case(GetParam(), {}, q_scale, /*workspace=*/true));
  }
}

std::vector<AttnCase> decode_cases() {
  std::vector<AttnCase> cases;
  // Positions at the edges of the warps' 16-key sub-tiles, of a 64-key tile and of a split's
  // minimum (256 keys), and long ones; every group of the Qwen3 models (1, 2, 4, 5, 8, 16).
  for (const auto& [qh, kvh] : {std::pair{8, 8}, {16, 8}, {32, 8}, {40, 8}, {64, 8}, {32, 4}, {64, 4}})
    for (int pos : {0, 1, 15, 16, 17, 63, 64, 65, 255, 256, 1000, 4097}) cases.push_back({qh, kvh, 1, pos});
  cases.push_back({64, 8, 1, 30719});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionDecodeGpu, ::testing::ValuesIn(decode_cases()),
                         [](const auto& info) { return attn_name(info.param); });

// Times (median of 5 launches, printed; nothing asserted about speed) of one token at 30720 keys
// on the flash kernel and on the one-token kernel, both unsplit, and through attention() with key
// splits (the engine's call), for the 8B (32/8) and 30B-A3B (32/4) groups.
TEST(AttentionDecodeGpuLong, AgainstFlashKernelTimed) {
  for (const AttnCase c : {AttnCase{32, 8, 1, 30719}, AttnCase{32, 4, 1, 30719}, AttnCase{32, 8, 1, 1}}) {
    const AttnResult flash = run_attention_case(c, {}, 1.0, false, &flash_unsplit_mma);
    const AttnResult decode = run_attention_case(c, {}, 1.0, false, &decode_unsplit);
    const AttnResult split = run_attention_case(c, {}, 1.0, /*workspace=*/true);
    expect_flash_precision(decode);
    expect_flash_precision(split);
    std::printf("  one token at position %d, %d/%d heads: flash kernel %.1f us, one-token kernel %.1f us, "
                "attention() with key splits %.1f us\n",
                c.start_pos, c.q_heads, c.kv_heads, 1e3 * flash.ms, 1e3 * decode.ms, 1e3 * split.ms);
  }
}

// Pages of two key tiles (128 rows): flash tiles take either half of a page, and key splits may
// start mid-page.
TEST(AttentionGpuPages, PagesOfTwoTilesMatchTwin) {
  expect_flash_precision(run_attention_case({32, 8, 300, 100}, {}, 1.0, false, &attention, 2 * kPage));
  run_attention_case({32, 8, 3, 1000}, {}, 1.0, /*workspace=*/true, &attention, 2 * kPage);
  run_attention_case({16, 8, 1, 5000}, {}, 1.0, /*workspace=*/true, &attention, 2 * kPage);
}

// Key splits over a batch: 600 queries of 8 q heads over one kv head make 75 flash CTAs, under one
// wave on a 132-SM card at 2 CTAs per SM, so attention() splits the 605 keys in two (tiles 0-4 and
// 5-9). The CTA of queries 312-319 (start 5: keys up to 317..324) meets the second split's first
// key, 320, only from query 315 on: its first rows see no key of that split (the kernel's
// exponent base for a row at -inf), and the CTAs of earlier queries have no tile in it at all (an
// empty partial). Every query is compared with the twin.
TEST(AttentionGpuSplits, BatchWhoseEarlyQueriesSeeNoKeyOfTheLastSplit) {
  expect_flash_precision(run_attention_case({8, 1, 600, 5}, {}, 1.0, /*workspace=*/true));
  expect_flash_precision(run_attention_case({8, 1, 600, 5}, {}, 6.0, /*workspace=*/true));
}

// ---- silu_mul, add ----

TEST(LayerOpsGpu, SiluMulBitExact) {
  for (int inter : {768, 3072, 9728, 12288, 25600, 8})
    for (int n : {1, 3, 17, 256}) {
      Rng rng(13ull * inter + n);
      auto gu = random_bf16(static_cast<std::size_t>(n) * 2 * inter, rng, 3.0);
      gu[0] = float_to_bf16(-95.0f), gu[1] = float_to_bf16(95.0f), gu[2] = float_to_bf16(0.0f);  // extremes
      DeviceBuffer<bf16> d_gu(gu);
      auto d_out = poisoned(static_cast<std::size_t>(n) * inter);
      ASSERT_TRUE(silu_mul({d_gu.get(), d_out.get(), n, inter}, nullptr).ok());
      std::vector<bf16> want(static_cast<std::size_t>(n) * inter);
      ASSERT_TRUE(cpu::silu_mul({gu.data(), want.data(), n, inter}).ok());
      expect_same_bits(d_out.download(), want, "silu_mul inter " + std::to_string(inter) + " n " + std::to_string(n));
    }
}

TEST(LayerOpsGpu, AddBitExact) {
  for (std::size_t count : {std::size_t{1}, std::size_t{7}, std::size_t{8}, std::size_t{1000003},
                            std::size_t{4096} * 5120}) {
    Rng rng(count);
    auto x = random_bf16(count, rng, 10.0);
    const auto y = random_bf16(count, rng, 0.1);
    DeviceBuffer<bf16> d_x(x), d_y(y);
    ASSERT_TRUE(add({d_x.get(), d_y.get(), count}, nullptr).ok());
    ASSERT_TRUE(cpu::add({x.data(), y.data(), count}).ok());
    expect_same_bits(d_x.download(), x, "add count " + std::to_string(count));
  }
}

// ---- lm_head ----

TEST(LayerOpsGpu, LmHeadMatchesTwin) {
  struct LmCase {
    int n, hidden, vocab;
  };
  // One case with Qwen3's real vocabulary; the wider hiddens use a smaller vocabulary, because
  // drawing 151936 x 5120 random weights on the host took most of the test's 65 s (H100 run).
  // Up to 8 tokens and 8 MB of weights the warp-per-row kernel runs (the MoE routers: 128 x 2048,
  // 128 x 4096; rows past its preloaded part; a row narrower than a warp's loads), beyond either
  // cuBLASLt.
  for (const LmCase c : {LmCase{1, 1024, 151936}, LmCase{3, 4096, 24001}, LmCase{17, 5120, 16384},
                         LmCase{2, 2048, 1001}, LmCase{64, 2560, 4096}, LmCase{1, 2048, 128}, LmCase{8, 4096, 130},
                         LmCase{2, 264, 7}, LmCase{9, 2048, 128}}) {
    Rng rng(c.n * 1000003ull + c.hidden);
    const auto x = random_bf16(static_cast<std::size_t>(c.n) * c.hidden, rng, 2.0);
    const auto w = random_bf16(static_cast<std::size_t>(c.vocab) * c.hidden, rng, 0.02);
    DeviceBuffer<bf16> d_x(x), d_w(w);
    DeviceBuffer<float> d_logits(static_cast<std::size_t>(c.n) * c.vocab);
    d_logits.fill_bytes(0xFF);
    const Status s = lm_head({d_x.get(), d_w.get(), d_logits.get(), c.n, c.hidden, c.vocab}, nullptr);
    ASSERT_TRUE(s.ok()) << s.message();
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<float> want(static_cast<std::size_t>(c.n) * c.vocab);
    ASSERT_TRUE(cpu::lm_head({x.data(), w.data(), want.data(), c.n, c.hidden, c.vocab}).ok());
    const auto got = d_logits.download();
    double worst = 0;
    for (int t = 0; t < c.n; ++t)
      for (int v = 0; v < c.vocab; v += (t == 0 ? 3 : 97)) {  // a sample (the NaN check below covers every logit)
        double mag = 0;
        for (int h = 0; h < c.hidden; ++h)
          mag += std::fabs(double(f(x[static_cast<std::size_t>(t) * c.hidden + h])) *
                           f(w[static_cast<std::size_t>(v) * c.hidden + h]));
        const std::size_t i = static_cast<std::size_t>(t) * c.vocab + v;
        const double diff = std::fabs(double(got[i]) - want[i]);
        ASSERT_LE(diff, 1e-5 * mag) << "logit [" << t << ", " << v << "] n " << c.n << " hidden " << c.hidden << ": got "
                                    << got[i] << ", want " << want[i];
        worst = std::max(worst, diff / mag);
      }
    for (float g : got) ASSERT_FALSE(std::isnan(g)) << "an unwritten logit";
    std::printf("  lm_head n %d hidden %d vocab %d: max |diff| / sum|x w| = %.2e\n", c.n, c.hidden, c.vocab, worst);
  }
}

// ---- fused ops ----

struct FusedNormCase {
  int rows, dim;
  bool residual, out, quantize;
};

class RmsNormQuantizeGpu : public ::testing::TestWithParam<FusedNormCase> {};

TEST_P(RmsNormQuantizeGpu, BitExactWithTwin) {
  const FusedNormCase c = GetParam();
  const int groups = ceil_div(c.dim, kQuantGroup);
  const std::size_t count = static_cast<std::size_t>(c.rows) * c.dim;
  Rng rng(31ull * c.rows + c.dim);
  std::vector<bf16> x(count);
  for (int r = 0; r < c.rows; ++r) {  // rows of very different magnitudes, like residual streams
    const double scale = std::pow(10.0, rng.uniform(-2, 3));
    for (int i = 0; i < c.dim; ++i) x[static_cast<std::size_t>(r) * c.dim + i] = float_to_bf16(static_cast<float>(rng.normal() * scale));
  }
  if (c.rows > 1 && !c.residual)  // an all-zero group: the floor scale
    for (int i = 0; i < std::min(c.dim, kQuantGroup); ++i) x[c.dim + i] = float_to_bf16(0.0f);
  const auto y = random_bf16(count, rng, 3.0), w = random_bf16(c.dim, rng, 0.5);

  DeviceBuffer<bf16> d_x(x), d_y(y), d_w(w);
  auto d_out = poisoned(count);
  DeviceBuffer<fp8_e4m3> d_q(count);
  DeviceBuffer<float> d_s(static_cast<std::size_t>(c.rows) * groups);
  d_q.fill_bytes(0xFF), d_s.fill_bytes(0xFF);
  const Status st = rmsnorm_quantize({d_x.get(), c.residual ? d_y.get() : nullptr, d_w.get(),
                                      c.out ? d_out.get() : nullptr, c.quantize ? d_q.get() : nullptr,
                                      c.quantize ? d_s.get() : nullptr, c.rows, c.dim, kEps},
                                     nullptr);
  ASSERT_TRUE(st.ok()) << st.message();

  std::vector<bf16> out(count, bf16{kPoison});
  std::vector<fp8_e4m3> q(count);
  std::vector<float> sc(static_cast<std::size_t>(c.rows) * groups);
  ASSERT_TRUE(cpu::rmsnorm_quantize({x.data(), c.residual ? y.data() : nullptr, w.data(), c.out ? out.data() : nullptr,
                                     c.quantize ? q.data() : nullptr, c.quantize ? sc.data() : nullptr, c.rows, c.dim,
                                     kEps})
                  .ok());
  expect_same_bits(d_x.download(), x, "x");
  if (c.out) expect_same_bits(d_out.download(), out, "normed rows");
  if (c.quantize) {
    expect_same_bits(d_q.download(), q, "codes");
    expect_same_bits(d_s.download(), sc, "scales");
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, RmsNormQuantizeGpu,
    ::testing::Values(FusedNormCase{1, 1024, true, false, true}, FusedNormCase{1, 1024, false, false, true},
                      FusedNormCase{2, 2048, true, true, true}, FusedNormCase{3, 144, true, false, true},
                      FusedNormCase{3, 400, false, true, true}, FusedNormCase{1, 16, true, true, true},
                      FusedNormCase{17, 4096, true, false, true}, FusedNormCase{5, 2064, true, true, false},
                      FusedNormCase{100, 5120, true, false, true}, FusedNormCase{1000, 2560, false, true, true},
                      FusedNormCase{2, 5120, true, true, false},
                      // Past the kernel's preloaded weights: 2 warps x 16 groups; 8 warps x 9 groups.
                      FusedNormCase{1100, 4096, true, false, true}, FusedNormCase{1, 9216, true, true, true}),
    [](const auto& info) {
      const auto& c = info.param;
      return "rows" + std::to_string(c.rows) + "dim" + std::to_string(c.dim) + (c.residual ? "_add" : "") +
             (c.out ? "_out" : "") + (c.quantize ? "_q8" : "");
    });

TEST(LayerOpsGpu, SiluMulQuantizeBitExact) {
  for (int inter : {16, 144, 400, 768, 3072, 9728, 25600})
    for (int n : {1, 2, 3, 17, 256}) {
      Rng rng(131ull * inter + n);
      const int groups = ceil_div(inter, kQuantGroup);
      auto gu = random_bf16(static_cast<std::size_t>(n) * 2 * inter, rng, 3.0);
      gu[0] = float_to_bf16(-95.0f), gu[1] = float_to_bf16(95.0f), gu[2] = float_to_bf16(0.0f);  // extremes
      DeviceBuffer<bf16> d_gu(gu);
      DeviceBuffer<fp8_e4m3> d_q(static_cast<std::size_t>(n) * inter);
      DeviceBuffer<float> d_s(static_cast<std::size_t>(n) * groups);
      d_q.fill_bytes(0xFF), d_s.fill_bytes(0xFF);
      ASSERT_TRUE(silu_mul_quantize({d_gu.get(), d_q.get(), d_s.get(), n, inter}, nullptr).ok());
      std::vector<fp8_e4m3> q(static_cast<std::size_t>(n) * inter);
      std::vector<float> sc(static_cast<std::size_t>(n) * groups);
      ASSERT_TRUE(cpu::silu_mul_quantize({gu.data(), q.data(), sc.data(), n, inter}).ok());
      const std::string what = "silu_mul_quantize inter " + std::to_string(inter) + " n " + std::to_string(n);
      expect_same_bits(d_q.download(), q, what + " codes");
      expect_same_bits(d_s.download(), sc, what + " scales");
    }
}

// ---- start_pos_ptr: the position from device memory ----

TEST(LayerOpsGpu, QkNormRopeWithStartPosPtrMatchesByValue) {
  const int qh = 16, kvh = 8, capacity = 5000, pool_pages = ceil_div(capacity, kPage) + kSparePages;
  const std::size_t row = static_cast<std::size_t>(qh + 2 * kvh) * kHd;
  const std::size_t cache = static_cast<std::size_t>(pool_pages) * kPage * kvh * kHd;
  for (int pos : {0, 1, 777, capacity - 1}) {
    Rng rng(pos + 5);
    const auto qkv = random_bf16(row, rng, 3.0), qn = random_bf16(kHd, rng, 0.7), kn = random_bf16(kHd, rng, 0.7);
    DeviceBuffer<bf16> a_qkv(qkv), b_qkv(qkv), d_qn(qn), d_kn(kn);
    auto a_k = poisoned(cache), a_v = poisoned(cache), b_k = poisoned(cache), b_v = poisoned(cache);
    DeviceBuffer<int> d_pos(std::vector<int>{pos});
    DeviceBuffer<std::int32_t> d_table(testing::shuffled_table(capacity, kPage, pool_pages, rng));
    ASSERT_TRUE(qk_norm_rope({a_qkv.get(), d_qn.get(), d_kn.get(), a_k.get(), a_v.get(), d_table.get(), kPage, 1, pos,
                              capacity, qh, kvh, kHd, kEps, kTheta},
                             nullptr)
                    .ok());
    QkNormRopeArgs args{b_qkv.get(), d_qn.get(), d_kn.get(), b_k.get(), b_v.get(), d_table.get(), kPage, 1,
                        capacity - 1, capacity, qh, kvh, kHd, kEps, kTheta};
    args.start_pos_ptr = d_pos.get();
    ASSERT_TRUE(qk_norm_rope(args, nullptr).ok());
    const std::string what = "position " + std::to_string(pos);
    expect_same_bits(b_qkv.download(), a_qkv.download(), what + " qkv");
    expect_same_bits(b_k.download(), a_k.download(), what + " k cache");
    expect_same_bits(b_v.download(), a_v.download(), what + " v cache");
  }
}

// Decode attention at `pos` with a workspace: by value, and with the position read from device
// memory by a launch sized for position `bound` (as the decode graph records it). The cache is
// paged through a shuffled table as long as the bound's context whose entries past keys_max point
// at page 0, as the engine's unused entries do.
TEST(LayerOpsGpu, AttentionWithStartPosPtrMatchesByValueAtEveryContextLength) {
  for (const auto& [qh, kvh] : {std::pair{16, 8}, std::pair{64, 4}}) {
    const int bound = 40959, keys_max = 20001;  // cache rows past keys_max are never read
    const std::size_t row = static_cast<std::size_t>(qh + 2 * kvh) * kHd, cache_row = static_cast<std::size_t>(kvh) * kHd;
    Rng rng(qh);
    const auto k = random_bf16(keys_max * cache_row, rng), v = random_bf16(keys_max * cache_row, rng);
    const int pool_pages = ceil_div(keys_max, kPage) + kSparePages, width = static_cast<int>(cache_row);
    auto table = testing::shuffled_table(keys_max, kPage, pool_pages, rng);
    table.resize(ceil_div(bound + 1, kPage), 0);
    DeviceBuffer<bf16> d_k(testing::scatter_rows(k, keys_max, width, table, kPage, pool_pages, bf16{kPoison}));
    DeviceBuffer<bf16> d_v(testing::scatter_rows(v, keys_max, width, table, kPage, pool_pages, bf16{kPoison}));
    DeviceBuffer<std::int32_t> d_table(table);
    DeviceBuffer<float> d_ws(attention_workspace_bytes(16, qh) / sizeof(float));
    const float scale = static_cast<float>(1.0 / std::sqrt(double(kHd)));
    for (int pos : {0, 1, 511, 512, 1023, 1024, 1537, 4095, 9000, 20000}) {
      const auto qkv = random_bf16(row, rng, 2.0);
      DeviceBuffer<bf16> d_qkv(qkv);
      DeviceBuffer<int> d_pos(std::vector<int>{pos});
      auto a_out = poisoned(static_cast<std::size_t>(qh) * kHd), b_out = poisoned(static_cast<std::size_t>(qh) * kHd);
      d_ws.fill_bytes(0xFF);
      ASSERT_TRUE(attention({d_qkv.get(), d_k.get(), d_v.get(), d_table.get(), kPage, a_out.get(), 1, pos, bound + 1,
                             qh, kvh, kHd, scale, d_ws.get(), d_ws.bytes()},
                            nullptr)
                      .ok());
      d_ws.fill_bytes(0xFF);
      AttentionArgs args{d_qkv.get(), d_k.get(), d_v.get(), d_table.get(), kPage, b_out.get(), 1, bound, bound + 1,
                         qh, kvh, kHd, scale, d_ws.get(), d_ws.bytes()};
      args.start_pos_ptr = d_pos.get();
      ASSERT_TRUE(attention(args, nullptr).ok());
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      expect_same_bits(b_out.download(), a_out.download(),
                       "attention q" + std::to_string(qh) + " kv" + std::to_string(kvh) + " position " + std::to_string(pos));
    }
  }
}

// AttentionArgs::rope (decode): the flash kernel's own qk_norm_rope leaves the caches and the
// output (and its quantized copy) bit for bit as qk_norm_rope followed by attention, with and
// without key splits, by value and with the position from device memory (a launch sized for the
// longest context, as the decode graph records it), in every group size of the Qwen3 models.
TEST(LayerOpsGpu, AttentionWithFusedRopeMatchesQkNormRopeThenAttention) {
  for (const auto& [qh, kvh] : {std::pair{16, 8}, std::pair{32, 8}, std::pair{64, 8}, std::pair{32, 4}}) {
    const int capacity = 10000, bound = capacity - 1, pool_pages = ceil_div(capacity, kPage) + kSparePages;
    const std::size_t row = static_cast<std::size_t>(qh + 2 * kvh) * kHd, cache_row = static_cast<std::size_t>(kvh) * kHd;
    const std::size_t pool = static_cast<std::size_t>(pool_pages) * kPage * cache_row;
    Rng rng(1000 * qh + kvh);
    const auto qn = random_bf16(kHd, rng, 0.7), kn = random_bf16(kHd, rng, 0.7);
    const auto k0 = random_bf16(pool, rng), v0 = random_bf16(pool, rng);
    DeviceBuffer<bf16> d_qn(qn), d_kn(kn);
    DeviceBuffer<std::int32_t> d_table(testing::shuffled_table(capacity, kPage, pool_pages, rng));
    DeviceBuffer<float> d_ws(attention_workspace_bytes(1, qh) / sizeof(float));
    const float scale = static_cast<float>(1.0 / std::sqrt(double(kHd)));
    for (int pos : {0, 1, 63, 64, 1000, 4097, bound}) {
      for (const bool splits : {false, true}) {
        for (const bool from_memory : {false, true}) {
          const auto qkv = random_bf16(row, rng, 3.0);
          // Unfused: qk_norm_rope, then attention.
          DeviceBuffer<bf16> a_qkv(qkv), a_k(k0), a_v(v0);
          auto a_out = poisoned(static_cast<std::size_t>(qh) * kHd);
          DeviceBuffer<fp8_e4m3> a_q8(static_cast<std::size_t>(qh) * kHd), b_q8(static_cast<std::size_t>(qh) * kHd);
          DeviceBuffer<float> a_s(qh), b_s(qh);
          ASSERT_TRUE(qk_norm_rope({a_qkv.get(), d_qn.get(), d_kn.get(), a_k.get(), a_v.get(), d_table.get(), kPage, 1,
                                    pos, capacity, qh, kvh, kHd, kEps, kTheta},
                                   nullptr)
                          .ok());
          AttentionArgs a_args{a_qkv.get(), a_k.get(), a_v.get(), d_table.get(), kPage, a_out.get(), 1, pos, capacity,
                               qh,          kvh,       kHd,       scale};
          if (splits) a_args.workspace = d_ws.get(), a_args.workspace_bytes = d_ws.bytes();
          a_args.q8 = a_q8.get(), a_args.q8_scales = a_s.get();
          ASSERT_TRUE(attention(a_args, nullptr).ok());
          // Fused.
          DeviceBuffer<bf16> b_qkv(qkv), b_k(k0), b_v(v0);
          DeviceBuffer<int> d_pos(std::vector<int>{pos});
          auto b_out = poisoned(static_cast<std::size_t>(qh) * kHd);
          QkNormRopeArgs rope{b_qkv.get(), d_qn.get(), d_kn.get(), b_k.get(), b_v.get(), d_table.get(), kPage, 1,
                              from_memory ? bound : pos, capacity, qh, kvh, kHd, kEps, kTheta};
          if (from_memory) rope.start_pos_ptr = d_pos.get();
          AttentionArgs b_args{b_qkv.get(), b_k.get(), b_v.get(), d_table.get(), kPage, b_out.get(), 1,
                               rope.start_pos, capacity, qh, kvh, kHd, scale};
          b_args.start_pos_ptr = rope.start_pos_ptr;
          if (splits) b_args.workspace = d_ws.get(), b_args.workspace_bytes = d_ws.bytes();
          b_args.q8 = b_q8.get(), b_args.q8_scales = b_s.get();
          b_args.rope = &rope;
          ASSERT_TRUE(attention(b_args, nullptr).ok());
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
          const std::string what = "q" + std::to_string(qh) + " kv" + std::to_string(kvh) + " position " +
                                   std::to_string(pos) + (splits ? " split" : "") + (from_memory ? " from memory" : "");
          expect_same_bits(b_k.download(), a_k.download(), what + " k cache");
          expect_same_bits(b_v.download(), a_v.download(), what + " v cache");
          expect_same_bits(b_out.download(), a_out.download(), what + " output");
          expect_same_bits(b_q8.download(), a_q8.download(), what + " quantized output");
          expect_same_bits(b_s.download(), a_s.download(), what + " quantized output scales");
        }
      }
    }
  }
}

// ---- bad arguments ----

TEST(LayerOpsGpuArgs, RejectsBadArgumentsWithoutLaunching) {
  DeviceBuffer<bf16> buf(4096);
  bf16* p = buf.get();
  DeviceBuffer<std::int32_t> table(std::vector<std::int32_t>{0});
  const std::int32_t* bt = table.get();
  Status s = qk_norm_rope({p, p, p, p, p, bt, kPage, 1, 0, 4, 2, 1, 64, kEps, kTheta}, nullptr);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("head_dim"), std::string::npos) << s.message();
  s = attention({p, p, p, bt, kPage, p, 1, 0, 4, 2, 1, 64, 0.1f}, nullptr);  // the CPU twin's head_dim only
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("head_dim = 64 is not supported"), std::string::npos) << s.message();
  s = attention({p, p, p, bt, kPage / 2, p, 1, 0, 4, 2, 1, kHd, 0.1f}, nullptr);  // pages of half a key tile
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("page_size = 32 must be a multiple of 64"), std::string::npos) << s.message();
  EXPECT_FALSE(rmsnorm({p, p, p, 1, 12, 12, 12, kEps}, nullptr).ok());      // dim % 8
  EXPECT_FALSE(rmsnorm({p + 1, p, p, 1, 16, 16, 16, kEps}, nullptr).ok());  // misaligned
  EXPECT_FALSE(silu_mul({p, p, 1, 12}, nullptr).ok());
  EXPECT_FALSE(add({p + 1, p, 8}, nullptr).ok());
  EXPECT_FALSE(embed({nullptr, p, p, 1, 4, 8}, nullptr).ok());
  EXPECT_FALSE(lm_head({p, p, nullptr, 1, 8, 4}, nullptr).ok());
  EXPECT_FALSE(lm_head({p, p, reinterpret_cast<float*>(p), 1, 12, 4}, nullptr).ok());
  EXPECT_TRUE(attention({nullptr, nullptr, nullptr, nullptr, kPage, nullptr, 0, 0, 0, 2, 1, kHd, 0.1f}, nullptr).ok());
  auto* q8 = reinterpret_cast<fp8_e4m3*>(p);
  auto* sc = reinterpret_cast<float*>(p + 1024);
  EXPECT_FALSE(rmsnorm_quantize({p, nullptr, p + 2048, nullptr, q8, sc, 1, 24, kEps}, nullptr).ok());  // dim % 16
  EXPECT_FALSE(rmsnorm_quantize({p + 4, nullptr, p + 2048, nullptr, q8, sc, 1, 32, kEps}, nullptr).ok());  // misaligned
  EXPECT_FALSE(silu_mul_quantize({p, q8, sc, 1, 24}, nullptr).ok());
  EXPECT_FALSE(silu_mul_quantize({p, q8 + 4, sc, 1, 32}, nullptr).ok());
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

}  // namespace
}  // namespace fp8lm
