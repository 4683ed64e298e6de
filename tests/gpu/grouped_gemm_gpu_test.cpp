// The grouped (MoE) FP8 GEMM on the GPU against the fp64 oracle, expert by expert: every compiled
// configuration (forced) and the heuristic's choice, with the output poisoned (NaN) before each run.
// Expert shapes of Qwen3-30B-A3B, Qwen3-235B-A22B and the tiny-moe preset, with 128 and 8 experts,
// and row distributions that exercise the scheduling:
//   decode      1 token, top-8: 8 experts with one row each, the others empty
//   small_batch 16 tokens, top-8 (a few rows per expert)
//   prefill     4096 tokens, top-8, balanced random routing (8 experts: 4096 rows each)
//   one_expert  all 300 rows in one expert in the middle, every other expert empty
//   ragged      0..200 rows per expert, a third of them empty (not multiples of any tile)
// Each expert's first and last row (where a tile meets the next expert's rows) and two random ones
// are checked against the oracle (the whole fp64 reference would take hours on the CPU); every
// element of the output is checked for NaN (unwritten rows). The weights are generated once per
// (shape, experts) and reused by the distributions.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "fp8lm/device_buffer.h"
#include "fp8lm/grouped_gemm.h"
#include "fp8lm/layer_ops.h"
#include "fp8lm/mlp_ops.h"
#include "fp8lm/oracle_check.h"
#include "fp8lm/qwen3_models.h"
#include "fp8lm/random.h"
#include "bit_compare.h"
#include "grouped_oracle.h"

namespace fp8lm {
namespace {

constexpr int kTopK = 8;
constexpr int kPrefillTokens = 4096;
constexpr int kSmallBatchTokens = 16;
constexpr int kOneExpertRows = 300;
constexpr int kRaggedMaxRows = 200;
constexpr int kRandomRowsPerExpert = 2;  // checked besides each expert's first and last row

struct Case {
  std::string name;
  int n, k, experts;
};

struct Distribution {
  std::string name;
  std::vector<int> counts;
};

std::vector<Distribution> distributions(int experts, Rng& rng) {
  std::vector<Distribution> d;
  d.push_back({"decode", random_topk_counts(1, experts, kTopK, rng)});
  d.push_back({"small_batch", random_topk_counts(kSmallBatchTokens, experts, kTopK, rng)});
  d.push_back({"prefill", random_topk_counts(kPrefillTokens, experts, kTopK, rng)});
  std::vector<int> one(experts, 0);
  one[experts / 2] = kOneExpertRows;
  d.push_back({"one_expert", one});
  std::vector<int> ragged(experts);
  for (int& c : ragged) c = rng.next() % 3 == 0 ? 0 : static_cast<int>(rng.next() % (kRaggedMaxRows + 1));
  d.push_back({"ragged", ragged});
  return d;
}

// Per expert with rows: its first and last row and kRandomRowsPerExpert others (global row ids).
std::vector<int> rows_to_check(const std::vector<std::int32_t>& offsets, Rng& rng) {
  std::vector<int> rows;
  for (std::size_t e = 0; e + 1 < offsets.size(); ++e) {
    const int first = offsets[e], count = offsets[e + 1] - first;
    if (count == 0) continue;
    rows.push_back(first);
    rows.push_back(first + count - 1);
    for (int i = 0; i < kRandomRowsPerExpert; ++i)
      rows.push_back(first + static_cast<int>(rng.next() % static_cast<std::uint64_t>(count)));
  }
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

class GroupedGemmGpu : public ::testing::TestWithParam<Case> {};

TEST_P(GroupedGemmGpu, EveryConfigMatchesOracle) {
  const Case& c = GetParam();
  Rng rng(std::hash<std::string>{}(c.name));
  HostGroupedGemmProblem p = random_grouped_weights(c.experts, c.n, c.k, rng);
  const DeviceBuffer<fp8_e4m3> b(p.b);
  const DeviceBuffer<float> sb(p.b_scales);

  DeviceInfo device;
  ASSERT_TRUE(current_device(&device).ok());
  std::vector<const GemmConfig*> runs = {nullptr};  // nullptr: the heuristic's choice
  for (const GemmConfig& config : gemm_configs())
    if (gemm_config_runs_on(config, device)) runs.push_back(&config);

  for (const Distribution& d : distributions(c.experts, rng)) {
    SCOPED_TRACE(d.name);
    set_random_rows(p, d.counts, rng);
    const DeviceBuffer<fp8_e4m3> a(p.a);
    const DeviceBuffer<float> sa(p.a_scales);
    const DeviceBuffer<std::int32_t> offsets(p.offsets);
    DeviceBuffer<bf16> out(static_cast<std::size_t>(p.total_rows) * c.n);
    const Fp8GroupedGemmArgs d_args{a.get(), sa.get(), b.get(), sb.get(), offsets.get(), out.get(),
                                    p.total_rows, p.num_experts, p.n, p.k, p.max_rows_per_expert};
    ASSERT_TRUE(validate_grouped_offsets(p.args(nullptr), p.offsets.data()).ok());

    const std::vector<int> rows = rows_to_check(p.offsets, rng);
    std::vector<double> ref, abs_ref;
    ASSERT_TRUE(grouped_oracle(p, rows, &ref, &abs_ref).ok());

    for (const GemmConfig* config : runs) {
      if (config && !gemm_config_takes_rows(*config, p.max_rows_per_expert)) continue;
      const std::string label = d.name + " " + (config ? config->name() : "auto");
      out.fill_bytes(0xFF);
      const Status s = gemm_fp8_grouped(d_args, nullptr, config);
      ASSERT_TRUE(s.ok()) << label << ": " << s.message();
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << label;
      const GemmConfig ran = config ? *config
                                    : pick_grouped_gemm_config(p.total_rows, p.max_rows_per_expert, p.num_experts,
                                                               p.n, p.k, device);
      const auto check = check_against_oracle(out.download(), p.total_rows, c.n, rows, ref.data(), abs_ref.data(),
                                              gemm_accumulation_tolerance(ran));
      EXPECT_TRUE(check.ok()) << label << " (" << ran.name() << ", " << p.total_rows << " rows): " << check.first_problem
                              << "; " << check.out_of_bound << " elements out of bound, " << check.non_finite
                              << " non-finite, rel. Frobenius " << check.rel_frobenius;
    }
  }
}

std::vector<Case> cases() {
  std::vector<Case> all;
  auto add = [&](const std::string& model, int n, int k) {
    for (int experts : {128, 8})
      all.push_back({model + "_n" + std::to_string(n) + "k" + std::to_string(k) + "_e" + std::to_string(experts), n, k,
                     experts});
  };
  for (const Qwen3Dims& d : kQwen3Models) {
    if (d.experts == 0) continue;
    add(d.name, 2 * d.intermediate, d.hidden);  // gate_up
    add(d.name, d.hidden, d.intermediate);      // down
  }
  // tiny-moe (engine presets): gate_up 512 x 256, down 256 x 256.
  add("tiny-moe", 512, 256);
  add("tiny-moe", 256, 256);
  // Ragged n and k (tensor-parallel splits): B tiles run into the next expert's weights.
  add("ragged", 200, 144);
  return all;
}

INSTANTIATE_TEST_SUITE_P(Experts, GroupedGemmGpu, ::testing::ValuesIn(cases()), [](const auto& info) {
  std::string s = info.param.name;
  std::replace_if(s.begin(), s.end(), [](char ch) { return !std::isalnum(static_cast<unsigned char>(ch)); }, '_');
  return s;
});

// grouped_gate_up_swiglu (fp8lm/mlp_ops.h): the one-launch form (decode kernel with the per-group
// epilogue, counters per expert slot) leaves the grouped GEMM's output and the activation codes
// and scales bit for bit as gemm_fp8_grouped then silu_mul_quantize, for the MoE gate_up shapes at
// decode and a 16-token batch (up to 16 rows per expert), twice on the same counters; the prefill
// routing (more rows per expert) takes the two launches.
TEST(GroupedGateUpSwigluGpu, OneOpEqualsGroupedGemmThenSiluMulQuantize) {
  for (const auto& [inter, hidden, experts] :
       {std::tuple{768, 2048, 128}, std::tuple{1536, 4096, 128}, std::tuple{256, 256, 8}}) {
    Rng rng(inter + hidden + experts);
    HostGroupedGemmProblem p = random_grouped_weights(experts, 2 * inter, hidden, rng);
    const DeviceBuffer<fp8_e4m3> b(p.b);
    const DeviceBuffer<float> sb(p.b_scales);
    const int top_k = std::min(kTopK, experts);
    for (const auto& [name, tokens] : {std::pair{"decode", 1}, std::pair{"small_batch", 16}, std::pair{"prefill", 300}}) {
      set_random_rows(p, random_topk_counts(tokens, experts, top_k, rng), rng);
      const std::string what = std::string(name) + " inter " + std::to_string(inter) + " experts " +
                                std::to_string(experts);
      const DeviceBuffer<fp8_e4m3> a(p.a);
      const DeviceBuffer<float> sa(p.a_scales);
      const DeviceBuffer<std::int32_t> offsets(p.offsets);
      const int rows = p.total_rows, groups = ceil_div(inter, kQuantGroup);
      const std::size_t out_count = static_cast<std::size_t>(rows) * 2 * inter;
      const Fp8GroupedGemmArgs gemm_ref{a.get(), sa.get(), b.get(), sb.get(), offsets.get(), nullptr, rows, experts,
                                        2 * inter, hidden, p.max_rows_per_expert};
      DeviceBuffer<bf16> want_out(out_count);
      DeviceBuffer<fp8_e4m3> want_q8(static_cast<std::size_t>(rows) * inter);
      DeviceBuffer<float> want_scales(static_cast<std::size_t>(rows) * groups);
      Fp8GroupedGemmArgs g = gemm_ref;
      g.out = want_out.get();
      ASSERT_TRUE(gemm_fp8_grouped(g, nullptr).ok()) << what;
      ASSERT_TRUE(silu_mul_quantize({want_out.get(), want_q8.get(), want_scales.get(), rows, inter}, nullptr).ok());
      DeviceBuffer<int> counters(std::vector<int>(grouped_gate_up_swiglu_counters(experts, inter), 0));
      for (int call = 0; call < 2; ++call) {
        DeviceBuffer<bf16> out(out_count);
        DeviceBuffer<fp8_e4m3> q8(static_cast<std::size_t>(rows) * inter);
        DeviceBuffer<float> scales(static_cast<std::size_t>(rows) * groups);
        out.fill_bytes(0xFF), q8.fill_bytes(0xFF), scales.fill_bytes(0xFF);
        g = gemm_ref;
        g.out = out.get();
        g.offsets_settled = call == 1;  // the second call reads the offsets before its wait: the same bits
        ASSERT_TRUE(grouped_gate_up_swiglu({g, {out.get(), q8.get(), scales.get(), rows, inter}, counters.get()}, nullptr)
                        .ok())
            << what;
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
        const std::string label = what + " call " + std::to_string(call);
        testing::expect_same_bits(out.download(), want_out.download(), label + " out");
        testing::expect_same_bits(q8.download(), want_q8.download(), label + " codes");
        EXPECT_EQ(scales.download(), want_scales.download()) << label;
        EXPECT_EQ(counters.download(), std::vector<int>(grouped_gate_up_swiglu_counters(experts, inter), 0)) << label;
      }
    }
  }
}

// Fp8GroupedGemmArgs::offsets_settled (the sm_90 decode kernel looks up its expert and starts its
// weights before waiting for its predecessor) gives the bits of the default, at decode sizes:
// one token's top-8 of 128 experts, 16 tokens', and one expert with every row.
TEST(GroupedGemmGpu, SettledOffsetsGiveTheSameBits) {
  for (const auto& [n, k] : {std::pair{1536, 2048}, std::pair{2048, 768}, std::pair{200, 144}}) {
    Rng rng(n + k);
    HostGroupedGemmProblem p = random_grouped_weights(128, n, k, rng);
    const DeviceBuffer<fp8_e4m3> b(p.b);
    const DeviceBuffer<float> sb(p.b_scales);
    std::vector<int> one_expert(128, 0);
    one_expert[77] = 9;
    for (const auto& counts : {random_topk_counts(1, 128, kTopK, rng), random_topk_counts(16, 128, kTopK, rng), one_expert}) {
      set_random_rows(p, counts, rng);
      const DeviceBuffer<fp8_e4m3> a(p.a);
      const DeviceBuffer<float> sa(p.a_scales);
      const DeviceBuffer<std::int32_t> offsets(p.offsets);
      const std::size_t count = static_cast<std::size_t>(p.total_rows) * n;
      DeviceBuffer<bf16> want(count), got(count);
      want.fill_bytes(0xFF), got.fill_bytes(0xFF);
      Fp8GroupedGemmArgs g{a.get(), sa.get(), b.get(), sb.get(), offsets.get(), want.get(),
                           p.total_rows, p.num_experts, n, k, p.max_rows_per_expert};
      ASSERT_TRUE(gemm_fp8_grouped(g, nullptr).ok());
      g.out = got.get(), g.offsets_settled = true;
      ASSERT_TRUE(gemm_fp8_grouped(g, nullptr).ok());
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      testing::expect_same_bits(got.download(), want.download(),
                                "n " + std::to_string(n) + " k " + std::to_string(k) + ", " +
                                    std::to_string(p.total_rows) + " rows");
    }
  }
}

// Poisoned output stays poisoned when the arguments are bad: nothing is launched.
TEST(GroupedGemmGpuArgs, RejectsBadArgumentsWithoutLaunching) {
  DeviceBuffer<fp8_e4m3> a(64 * 32), b(4 * 64 * 32);
  DeviceBuffer<float> s(64);
  DeviceBuffer<std::int32_t> offsets(std::vector<std::int32_t>{0, 1, 1, 3, 4});
  DeviceBuffer<bf16> out(64 * 64);
  out.fill_bytes(0x11);
  Fp8GroupedGemmArgs args{a.get(), s.get(), b.get(), s.get(), offsets.get(), out.get(), 4, 4, 64, 24, 2};
  Status st = gemm_fp8_grouped(args, nullptr);
  EXPECT_NE(st.message().find("multiple of 16"), std::string::npos) << st.message();
  args.k = 32;
  args.offsets = nullptr;
  st = gemm_fp8_grouped(args, nullptr);
  EXPECT_NE(st.message().find("offsets"), std::string::npos) << st.message();
  EXPECT_TRUE(gemm_fp8_grouped({nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 4, 64, 32, 0}, nullptr).ok());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  for (const bf16 v : out.download()) ASSERT_EQ(v.bits, 0x1111);
}

}  // namespace
}  // namespace fp8lm
