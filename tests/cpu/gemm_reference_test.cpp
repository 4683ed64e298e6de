// The CPU backend GEMM (fp32, per-128-k promotion) against the fp64 oracle, on ragged and tiny
// shapes; and the oracle itself against a hand-computed case.
#include <gtest/gtest.h>

#include <vector>

#include "fp8lm/oracle_check.h"
#include "fp8lm/random.h"
#include "fp8lm/cpu.h"

namespace fp8lm {
namespace {

struct Shape {
  int m, n, k;
};

class CpuGemm : public ::testing::TestWithParam<Shape> {};

TEST_P(CpuGemm, MatchesOracle) {
  const auto [m, n, k] = GetParam();
  Rng rng(1000003ull * m + 1009ull * n + k);
  const HostGemmProblem p = random_gemm_problem(m, n, k, rng);
  std::vector<bf16> out(static_cast<std::size_t>(m) * n, bf16{0x7FC0});  // poisoned with NaN
  const Fp8GemmArgs args = p.args(out.data());
  ASSERT_TRUE(cpu::gemm_fp8_blockwise(args, 2).ok());
  std::vector<double> ref(out.size()), abs_ref(out.size());
  ASSERT_TRUE(cpu::gemm_fp8_blockwise_oracle(args, {}, ref.data(), abs_ref.data()).ok());
  std::vector<int> rows(m);
  for (int r = 0; r < m; ++r) rows[r] = r;
  const auto check = check_against_oracle(out, m, n, rows, ref.data(), abs_ref.data());
  EXPECT_TRUE(check.ok()) << check.first_problem << " (rel. Frobenius error " << check.rel_frobenius << ")";
  RecordProperty("rel_frobenius", std::to_string(check.rel_frobenius));
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuGemm,
                         ::testing::Values(Shape{1, 1, 16}, Shape{1, 256, 1024}, Shape{2, 130, 144},
                                           Shape{3, 255, 272}, Shape{7, 64, 16}, Shape{16, 384, 2048},
                                           Shape{33, 129, 400}, Shape{100, 200, 1040}),
                         [](const auto& info) {
                           return "m" + std::to_string(info.param.m) + "n" + std::to_string(info.param.n) + "k" +
                                  std::to_string(info.param.k);
                         });

TEST(CpuGemmOracle, HandComputed) {
  // k = 144: one full block and a 16-wide ragged block with its own scales.
  const int m = 1, n = 2, k = 144;
  std::vector<fp8_e4m3> a(k, cpu::fp8_encode(1.0f)), b(n * k, cpu::fp8_encode(2.0f));
  for (int c = 0; c < k; ++c) b[k + c] = cpu::fp8_encode(c < 128 ? -0.5f : 4.0f);
  std::vector<float> sa = {0.5f, 2.0f};         // [1, 2]
  std::vector<float> sb = {1.0f, 0.25f};        // [1, 2]
  std::vector<bf16> out(2);
  const Fp8GemmArgs args{a.data(), sa.data(), b.data(), sb.data(), out.data(), m, n, k};
  std::vector<double> ref(2);
  ASSERT_TRUE(cpu::gemm_fp8_blockwise_oracle(args, {}, ref.data()).ok());
  // column 0: 128 * (1*0.5)(2*1) + 16 * (1*2)(2*0.25) = 128 + 16
  EXPECT_DOUBLE_EQ(ref[0], 144.0);
  // column 1: 128 * (0.5)(-0.5) + 16 * (2)(4*0.25) = -32 + 32
  EXPECT_DOUBLE_EQ(ref[1], 0.0);
  ASSERT_TRUE(cpu::gemm_fp8_blockwise(args).ok());
  EXPECT_EQ(bf16_to_float(out[0]), 144.0f);
  EXPECT_EQ(bf16_to_float(out[1]), 0.0f);
}

}  // namespace
}  // namespace fp8lm
