// The FP8 blockwise GEMM on the GPU against the fp64 oracle: every compiled configuration (forced)
// and the heuristic's choice, on fresh random inputs, with the output poisoned (NaN) before each
// run. Shapes: every Qwen3 GEMM of the benchmark models x m in {1,2,3,7,16,64,100,256,1000,4096},
// ragged n/k, and scale extremes. For m > 16 the oracle checks 16 rows (the first, the last and
// 14 random ones, different per case) - the fp64 reference over all rows would take hours on the
// CPU - while the whole output is checked for unwritten (NaN) elements.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "fp8lm/cpu.h"
#include "fp8lm/gemm.h"
#include "fp8lm/layer_ops.h"
#include "fp8lm/mlp_ops.h"
#include "fp8lm/qwen3_models.h"
#include "fp8lm/device_buffer.h"
#include "fp8lm/oracle_check.h"
#include "fp8lm/random.h"
#include "bit_compare.h"

namespace fp8lm {
namespace {

constexpr int kCheckedRows = 16;

struct Case {
  std::string name;
  int m, n, k;
  double a_scale_center = 1e-2, b_scale_center = 1e-4;  // typical activation / weight scales
  bool zero_block = false;  // one A group and one B 128x128 block all zero
};

HostGemmProblem make_problem(const Case& c, Rng& rng) {
  HostGemmProblem p = random_gemm_problem(c.m, c.n, c.k, rng, c.a_scale_center, c.b_scale_center);
  if (c.zero_block) {
    for (int i = 0; i < std::min(c.k, kQuantGroup); ++i) p.a[i] = fp8_e4m3{0};
    for (int r = 0; r < std::min(c.n, kQuantGroup); ++r)
      for (int i = 0; i < std::min(c.k, kQuantGroup); ++i) p.b[static_cast<std::size_t>(r) * c.k + i] = fp8_e4m3{0};
  }
  return p;
}

std::vector<int> rows_to_check(int m, Rng& rng) {
  std::vector<int> rows;
  if (m <= kCheckedRows) {
    for (int r = 0; r < m; ++r) rows.push_back(r);
    return rows;
  }
  rows = {0, m - 1};
  while (static_cast<int>(rows.size()) < kCheckedRows) {
    const int r = static_cast<int>(rng.next() % static_cast<std::uint64_t>(m));
    if (std::find(rows.begin(), rows.end(), r) == rows.end()) rows.push_back(r);
  }
  std::sort(rows.begin(), rows.end());
  return rows;
}

class GemmGpu : public ::testing::TestWithParam<Case> {};

TEST_P(GemmGpu, EveryConfigMatchesOracle) {
  const Case& c = GetParam();
  Rng rng(std::hash<std::string>{}(c.name));
  const HostGemmProblem p = make_problem(c, rng);
  DeviceBuffer<fp8_e4m3> a(p.a), b(p.b);
  DeviceBuffer<float> sa(p.a_scales), sb(p.b_scales);
  DeviceBuffer<bf16> out(static_cast<std::size_t>(c.m) * c.n);
  const Fp8GemmArgs d_args{a.get(), sa.get(), b.get(), sb.get(), out.get(), c.m, c.n, c.k};

  const std::vector<int> rows = rows_to_check(c.m, rng);
  std::vector<double> ref(rows.size() * c.n), abs_ref(rows.size() * c.n);
  ASSERT_TRUE(cpu::gemm_fp8_blockwise_oracle(p.args(nullptr), rows, ref.data(), abs_ref.data()).ok());

  std::vector<const GemmConfig*> runs = {nullptr};  // nullptr: the heuristic's choice
  DeviceInfo device;
  ASSERT_TRUE(current_device(&device).ok());
  for (const GemmConfig& config : gemm_configs())
    if (gemm_config_runs_on(config, device) && gemm_config_takes_rows(config, c.m)) runs.push_back(&config);
  for (const GemmConfig* config : runs) {
    const std::string label = config ? config->name() : "auto";
    out.fill_bytes(0xFF);
    const Status s = gemm_fp8_blockwise(d_args, nullptr, config);
    ASSERT_TRUE(s.ok()) << label << ": " << s.message();
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << label;
    const std::vector<bf16> got = out.download();
    const GemmConfig ran = config ? *config : pick_gemm_config(c.m, c.n, c.k, device);
    const auto check = check_against_oracle(got, c.m, c.n, rows, ref.data(), abs_ref.data(),
                                            gemm_accumulation_tolerance(ran));
    EXPECT_TRUE(check.ok()) << label << ": " << check.first_problem << "; " << check.out_of_bound
                            << " elements out of bound, " << check.non_finite << " non-finite, rel. Frobenius "
                            << check.rel_frobenius;
  }
}

std::vector<Case> qwen3_cases() {
  std::vector<Case> cases;
  for (const GemmShape& s : qwen3_benchmark_gemm_shapes())
    for (int m : {1, 2, 3, 7, 16, 64, 100, 256, 1000, 4096})
      cases.push_back({s.model + "_" + s.layer + "_m" + std::to_string(m), m, s.n, s.k});
  return cases;
}

std::vector<Case> ragged_cases() {
  std::vector<Case> cases;
  for (auto [m, n, k] : std::vector<std::array<int, 3>>{{1, 1, 16},      {2, 130, 144},   {3, 255, 272},
                                                        {7, 64, 16},     {17, 129, 400},  {33, 383, 1040},
                                                        {65, 513, 2064}, {129, 1000, 4112}, {300, 77, 1008},
                                                        {1, 4097, 4096}, {5, 16, 5136}})
    cases.push_back({"ragged_m" + std::to_string(m) + "n" + std::to_string(n) + "k" + std::to_string(k), m, n, k});
  // Scale extremes: tiny amax (the floor: 1e-10/448 ~ 2e-13) and huge; and zero blocks.
  cases.push_back({"tiny_scales", 64, 256, 512, 2e-13, 2e-13});
  cases.push_back({"huge_scales", 64, 256, 512, 1e4, 1e3});
  cases.push_back({"zero_block", 100, 384, 1024, 1e-2, 1e-4, true});
  return cases;
}

auto case_name = [](const auto& info) {
  std::string s = info.param.name;
  std::replace_if(s.begin(), s.end(), [](char ch) { return !std::isalnum(static_cast<unsigned char>(ch)); }, '_');
  return s;
};

INSTANTIATE_TEST_SUITE_P(Qwen3, GemmGpu, ::testing::ValuesIn(qwen3_cases()), case_name);
INSTANTIATE_TEST_SUITE_P(Edges, GemmGpu, ::testing::ValuesIn(ragged_cases()), case_name);

TEST(GemmGpuArgs, RejectsBadArgumentsWithoutLaunching) {
  DeviceBuffer<fp8_e4m3> a(64 * 32), b(64 * 32);
  DeviceBuffer<float> s(64);
  DeviceBuffer<bf16> out(64 * 64);
  out.fill_bytes(0x11);
  Status st = gemm_fp8_blockwise({a.get(), s.get(), b.get(), s.get(), out.get(), 2, 3, 24}, nullptr);
  EXPECT_NE(st.message().find("multiple of 16"), std::string::npos) << st.message();
  st = gemm_fp8_blockwise({a.get(), s.get(), nullptr, s.get(), out.get(), 2, 3, 32}, nullptr);
  EXPECT_NE(st.message().find("b (weights"), std::string::npos) << st.message();
  EXPECT_TRUE(gemm_fp8_blockwise({nullptr, nullptr, nullptr, nullptr, nullptr, 0, 3, 32}, nullptr).ok());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  for (const bf16 v : out.download()) ASSERT_EQ(v.bits, 0x1111);
}

// gate_up_swiglu (fp8lm/mlp_ops.h): the one-launch form (sm_90 decode kernel with the epilogue,
// up to 16 rows) leaves the GEMM output, the activation codes and their scales bit for bit as
// gemm_fp8_blockwise then silu_mul_quantize, on every Qwen3 dense gate_up shape, called twice in a
// row on the same counters (the first call must leave them zero); 17 rows take the two launches.
TEST(GateUpSwigluGpu, OneOpEqualsGemmThenSiluMulQuantize) {
  DeviceInfo device;
  ASSERT_TRUE(current_device(&device).ok());
  for (const auto& [inter, hidden] : {std::pair{3072, 1024}, std::pair{6144, 2048}, std::pair{9728, 2560},
                                      std::pair{12288, 4096}, std::pair{17408, 5120}, std::pair{25600, 5120}})
    for (int m : {1, 2, 3, 16, 17}) {
      const std::string what = "inter " + std::to_string(inter) + " hidden " + std::to_string(hidden) + " m " +
                               std::to_string(m);
      Rng rng(inter * 31 + m);
      const HostGemmProblem p = random_gemm_problem(m, 2 * inter, hidden, rng);
      DeviceBuffer<fp8_e4m3> a(p.a), b(p.b);
      DeviceBuffer<float> sa(p.a_scales), sb(p.b_scales);
      const std::size_t out_count = static_cast<std::size_t>(m) * 2 * inter;
      const std::size_t act_count = static_cast<std::size_t>(m) * inter, scale_count = m * gate_up_swiglu_counters(inter);
      // Two launches.
      DeviceBuffer<bf16> want_out(out_count);
      DeviceBuffer<fp8_e4m3> want_q8(act_count);
      DeviceBuffer<float> want_scales(scale_count);
      ASSERT_TRUE(gemm_fp8_blockwise({a.get(), sa.get(), b.get(), sb.get(), want_out.get(), m, 2 * inter, hidden}, nullptr)
                      .ok());
      ASSERT_TRUE(silu_mul_quantize({want_out.get(), want_q8.get(), want_scales.get(), m, inter}, nullptr).ok());
      // One op, twice on the same counters.
      DeviceBuffer<int> counters(std::vector<int>(gate_up_swiglu_counters(inter), 0));
      for (int call = 0; call < 2; ++call) {
        DeviceBuffer<bf16> out(out_count);
        DeviceBuffer<fp8_e4m3> q8(act_count);
        DeviceBuffer<float> scales(scale_count);
        out.fill_bytes(0xFF), q8.fill_bytes(0xFF), scales.fill_bytes(0xFF);
        const GateUpSwigluArgs args{{a.get(), sa.get(), b.get(), sb.get(), out.get(), m, 2 * inter, hidden},
                                    {out.get(), q8.get(), scales.get(), m, inter},
                                    counters.get()};
        ASSERT_TRUE(gate_up_swiglu(args, nullptr).ok()) << what;
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
        const std::string label = what + " call " + std::to_string(call);
        testing::expect_same_bits(out.download(), want_out.download(), label + " out");
        testing::expect_same_bits(q8.download(), want_q8.download(), label + " codes");
        EXPECT_EQ(scales.download(), want_scales.download()) << label;
        EXPECT_EQ(counters.download(), std::vector<int>(gate_up_swiglu_counters(inter), 0)) << label;
      }
    }
  // The activation must not overwrite the GEMM's input.
  DeviceBuffer<fp8_e4m3> a(64 * 256), b(512 * 256);
  DeviceBuffer<float> s(4096);
  DeviceBuffer<bf16> out(64 * 512);
  const Status st = gate_up_swiglu({{a.get(), s.get(), b.get(), s.get(), out.get(), 1, 512, 256},
                                    {out.get(), a.get(), s.get() + 1024, 1, 256}},
                                   nullptr);
  EXPECT_NE(st.message().find("must not be the GEMM's input"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace fp8lm
