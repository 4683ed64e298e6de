// The grouped (MoE) GEMM's CPU twin, argument checks and grid bound:
//  - the twin against the fp64 oracle (tests/grouped_oracle.h: each row against its own expert's
//    weights, sliced independently of grouped_expert_args, which the twin uses), on row
//    distributions with empty experts, one expert holding every row, one row per expert, ragged
//    counts; the output poisoned with NaN first;
//  - every malformed argument and offsets table named in the error, nothing written;
//  - grouped_row_blocks_bound (which sizes the sm90 grids and feeds the heuristic) bounds the real
//    row-block count of random top-k routings and is exact for one expert.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fp8lm/cpu.h"
#include "fp8lm/grouped_gemm.h"
#include "fp8lm/oracle_check.h"
#include "fp8lm/random.h"
#include "grouped_oracle.h"

namespace fp8lm {
namespace {

constexpr std::uint16_t kNanBits = 0x7FC0;

struct Case {
  std::string name;
  std::vector<int> rows_per_expert;
  int n, k;
};

class CpuGroupedGemm : public ::testing::TestWithParam<Case> {};

TEST_P(CpuGroupedGemm, EveryExpertMatchesOracle) {
  const Case& c = GetParam();
  Rng rng(std::hash<std::string>{}(c.name));
  const HostGroupedGemmProblem p = random_grouped_problem(c.rows_per_expert, c.n, c.k, rng);
  std::vector<bf16> out(static_cast<std::size_t>(p.total_rows) * c.n, bf16{kNanBits});
  const Status s = cpu::gemm_fp8_grouped(p.args(out.data()), 2);
  ASSERT_TRUE(s.ok()) << s.message();

  std::vector<int> rows(p.total_rows);
  for (int r = 0; r < p.total_rows; ++r) rows[r] = r;
  std::vector<double> ref, abs_ref;
  ASSERT_TRUE(grouped_oracle(p, rows, &ref, &abs_ref).ok());
  const auto check = check_against_oracle(out, p.total_rows, c.n, rows, ref.data(), abs_ref.data());
  EXPECT_TRUE(check.ok()) << check.first_problem << " (rel. Frobenius " << check.rel_frobenius << ")";
}

std::vector<int> ragged(int experts, Rng rng) {
  std::vector<int> counts(experts);
  for (int& c : counts) c = static_cast<int>(rng.next() % 40);  // 0..39: empty and partial tiles
  return counts;
}

INSTANTIATE_TEST_SUITE_P(
    Distributions, CpuGroupedGemm,
    ::testing::Values(Case{"one_expert_all_rows", {0, 0, 37, 0}, 256, 256},
                      Case{"empty_first_and_last", {0, 5, 9, 0}, 130, 144},
                      Case{"one_row_each", std::vector<int>(8, 1), 512, 256},
                      Case{"ragged_8_experts", ragged(8, Rng(7)), 256, 256},
                      Case{"ragged_odd_n", ragged(5, Rng(9)), 77, 272},
                      Case{"single_expert", {20}, 200, 1040}),
    [](const auto& info) { return info.param.name; });

TEST(CpuGroupedGemm, TopKCountsAddUp) {
  Rng rng(3);
  const std::vector<int> counts = random_topk_counts(50, 16, 4, rng);
  int total = 0;
  for (int c : counts) {
    EXPECT_LE(c, 50);  // a token picks an expert at most once
    total += c;
  }
  EXPECT_EQ(total, 50 * 4);
}

// ----------------------------------------------------------------------------------------------
// Argument checks.

struct Buffers {
  alignas(16) fp8_e4m3 a[64 * 32];
  alignas(16) fp8_e4m3 b[4 * 64 * 32];
  alignas(16) float sa[64];
  alignas(16) float sb[64];
  alignas(16) bf16 out[64 * 64];
  alignas(16) std::int32_t offsets[5] = {0, 1, 1, 3, 4};
  Fp8GroupedGemmArgs args() { return {a, sa, b, sb, offsets, out, 4, 4, 64, 32, 2}; }
};

std::string error_of(const Fp8GroupedGemmArgs& args) {
  const Status s = validate(args);
  return s.ok() ? "" : s.message();
}
std::string offsets_error_of(const Fp8GroupedGemmArgs& args) {
  const Status s = validate_grouped_offsets(args, args.offsets);
  return s.ok() ? "" : s.message();
}

TEST(GroupedGemmValidate, AcceptsGoodArguments) {
  Buffers buf{};
  EXPECT_EQ(error_of(buf.args()), "");
  EXPECT_EQ(offsets_error_of(buf.args()), "");
}

TEST(GroupedGemmValidate, NamesTheBadArgument) {
  Buffers buf{};
  auto with = [&](auto change) {
    Fp8GroupedGemmArgs a = buf.args();
    change(a);
    return error_of(a);
  };
  auto has = [](const std::string& message, const char* what) {
    return message.find(what) != std::string::npos && message.find("gemm_fp8_grouped") != std::string::npos;
  };
  EXPECT_TRUE(has(with([](auto& a) { a.num_experts = 0; }), "num_experts = 0"));
  EXPECT_TRUE(has(with([](auto& a) { a.num_experts = kMaxGroupedExperts + 1; }), "num_experts"));
  EXPECT_TRUE(has(with([](auto& a) { a.total_rows = -1; }), "total_rows = -1"));
  EXPECT_TRUE(has(with([](auto& a) { a.n = 0; }), "n = 0"));
  EXPECT_TRUE(has(with([](auto& a) { a.k = 24; }), "multiple of 16"));
  EXPECT_TRUE(has(with([](auto& a) { a.n = 1 << 30; a.num_experts = 4; }), "32 bits"));
  EXPECT_TRUE(has(with([](auto& a) { a.max_rows_per_expert = 0; }), "max_rows_per_expert = 0"));
  EXPECT_TRUE(has(with([](auto& a) { a.a = nullptr; }), "a (activations"));
  EXPECT_TRUE(has(with([](auto& a) { a.a_scales = nullptr; }), "a_scales"));
  EXPECT_TRUE(has(with([](auto& a) { a.b = nullptr; }), "b (stacked weights"));
  EXPECT_TRUE(has(with([](auto& a) { a.b_scales = nullptr; }), "b_scales"));
  EXPECT_TRUE(has(with([](auto& a) { a.out = nullptr; }), "out"));
  EXPECT_TRUE(has(with([](auto& a) { a.offsets = nullptr; }), "offsets"));
  EXPECT_TRUE(has(with([&](auto& a) { a.a = buf.a + 1; }), "16-byte aligned"));
}

TEST(GroupedGemmValidate, NamesTheBadOffsets) {
  Buffers buf{};
  auto with = [&](std::vector<std::int32_t> offsets, int total_rows, int max_rows) {
    std::copy(offsets.begin(), offsets.end(), buf.offsets);
    Fp8GroupedGemmArgs a = buf.args();
    a.total_rows = total_rows;
    a.max_rows_per_expert = max_rows;
    return offsets_error_of(a);
  };
  EXPECT_NE(with({1, 1, 1, 3, 4}, 4, 4).find("offsets[0] = 1"), std::string::npos);
  EXPECT_NE(with({0, 2, 1, 3, 4}, 4, 4).find("decrease at expert 1"), std::string::npos);
  EXPECT_NE(with({0, 1, 1, 3, 4}, 5, 4).find("must equal total_rows = 5"), std::string::npos);
  EXPECT_NE(with({0, 1, 1, 4, 4}, 4, 2).find("expert 2 has 3 rows"), std::string::npos);
}

TEST(GroupedGemmValidate, EmptyIsANoOp) {
  const Fp8GroupedGemmArgs empty{nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 8, 64, 32, 0};
  EXPECT_EQ(error_of(empty), "");
  EXPECT_TRUE(cpu::gemm_fp8_grouped(empty).ok());
}

TEST(GroupedGemmValidate, CpuTwinWritesNothingOnError) {
  Buffers buf{};
  for (auto& v : buf.out) v = bf16{0x1234};
  Fp8GroupedGemmArgs bad_k = buf.args();
  bad_k.k = 24;
  EXPECT_FALSE(cpu::gemm_fp8_grouped(bad_k).ok());
  buf.offsets[4] = 3;  // does not end at total_rows
  EXPECT_FALSE(cpu::gemm_fp8_grouped(buf.args()).ok());
  for (auto& v : buf.out) ASSERT_EQ(v.bits, 0x1234);
}

// ----------------------------------------------------------------------------------------------
// The grid bound.

TEST(GroupedRowBlocksBound, IsAnUpperBoundAndExactForOneExpert) {
  EXPECT_EQ(grouped_row_blocks_bound(300, 300, 1, 128), 3);        // dense: ceil(300 / 128)
  EXPECT_EQ(grouped_row_blocks_bound(8, 1, 128, 16), 8);           // decode: 8 experts with one row
  EXPECT_EQ(grouped_row_blocks_bound(32768, 32768, 128, 128), 256 + 127);
  Rng rng(5);
  for (int trial = 0; trial < 100; ++trial) {
    const std::vector<int> counts = random_topk_counts(1 + static_cast<int>(rng.next() % 600), 64, 4, rng);
    int total = 0, most = 0;
    long long blocks = 0;
    for (int c : counts) total += c, most = std::max(most, c), blocks += ceil_div(c, 64);
    EXPECT_GE(grouped_row_blocks_bound(total, most, 64, 64), blocks);
  }
}

}  // namespace
}  // namespace fp8lm
