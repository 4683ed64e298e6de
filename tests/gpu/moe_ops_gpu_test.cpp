// The MoE kernels against their CPU twins on fresh random inputs, outputs poisoned first: routing,
// plan, the gathered quantize of the experts' input and combine (with and without the next norm)
// are bit for bit (the kernels run the twins' per-token arithmetic from fp8lm/moe_math.h and
// rmsnorm_quantize's code; the plan is integer bookkeeping). All passed on an H200
// (bench/results/gpu-tests-2026-11-28-nvidia-h200-gpu-pending-a58ab98.log).
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "fp8lm/cpu.h"
#include "fp8lm/device_buffer.h"
#include "fp8lm/moe_ops.h"
#include "fp8lm/quant.h"
#include "fp8lm/random.h"
#include "bit_compare.h"

namespace fp8lm {
namespace {

using testing::expect_same_bits;
using testing::expect_same_values;

// Qwen3-30B-A3B routing (128 experts, top-8) and tiny-moe's (8, top-2), with and without
// renormalisation, on decode and prefill-sized n.
TEST(MoeOpsGpu, RouteBitExact) {
  Rng rng(11);
  for (const auto& [experts, top_k] : {std::pair{128, 8}, std::pair{8, 2}, std::pair{4, 4}})
    for (int n : {1, 7, 300})
      for (bool norm : {true, false}) {
        std::vector<float> logits(static_cast<std::size_t>(n) * experts);
        for (float& l : logits) l = static_cast<float>(rng.normal() * 2.0);
        std::vector<std::int32_t> want_experts(static_cast<std::size_t>(n) * top_k);
        std::vector<bf16> want_weights(want_experts.size());
        ASSERT_TRUE(cpu::moe_route({logits.data(), want_experts.data(), want_weights.data(), n, experts, top_k, norm}).ok());
        DeviceBuffer<float> d_logits(logits);
        DeviceBuffer<std::int32_t> d_experts(want_experts.size());
        DeviceBuffer<bf16> d_weights(want_weights.size());
        d_experts.fill_bytes(0xFF);
        d_weights.fill_bytes(0xFF);
        ASSERT_TRUE(moe_route({d_logits.get(), d_experts.get(), d_weights.get(), n, experts, top_k, norm}, nullptr).ok());
        const std::string what = std::to_string(experts) + " experts top-" + std::to_string(top_k) + " n " +
                                 std::to_string(n) + (norm ? " norm" : "");
        EXPECT_EQ(d_experts.download(), want_experts) << what;
        expect_same_bits(d_weights.download(), want_weights, what);
      }
}

// Decode (n = 1) to prefill sizes past one chunk of the kernel's 1024 pairs, top_k up to 8 of 128,
// with empty experts (routing among fewer candidates).
TEST(MoeOpsGpu, PlanBitExact) {
  Rng rng(13);
  struct Case {
    int experts, top_k, candidates;
  };
  for (const Case c : {Case{128, 8, 128}, Case{128, 8, 16}, Case{8, 2, 8}, Case{128, 1, 5}, Case{32, 32, 32}})
    for (int n : {1, 3, 129, 1000, 4096}) {
      const std::string what = std::to_string(c.experts) + " experts top-" + std::to_string(c.top_k) + " of " +
                               std::to_string(c.candidates) + ", n " + std::to_string(n);
      const std::size_t pairs = static_cast<std::size_t>(n) * c.top_k;
      const std::vector<std::int32_t> experts = random_routing(n, c.experts, c.top_k, rng, c.candidates);
      const std::vector<bf16> weights = random_bf16(pairs, rng);
      std::vector<std::int32_t> offsets(c.experts + 1), rows(pairs), slots(pairs);
      std::vector<bf16> combine_weights(pairs);
      ASSERT_TRUE(cpu::moe_plan({experts.data(), weights.data(), offsets.data(), rows.data(), slots.data(),
                                 combine_weights.data(), n, c.top_k, c.experts})
                      .ok())
          << what;
      DeviceBuffer<std::int32_t> d_experts(experts), d_offsets(offsets.size()), d_rows(pairs), d_slots(pairs);
      DeviceBuffer<bf16> d_weights(weights), d_combine_weights(pairs);
      d_offsets.fill_bytes(0xFF);
      d_rows.fill_bytes(0xFF);
      d_slots.fill_bytes(0xFF);
      d_combine_weights.fill_bytes(0xFF);
      ASSERT_TRUE(moe_plan({d_experts.get(), d_weights.get(), d_offsets.get(), d_rows.get(), d_slots.get(),
                            d_combine_weights.get(), n, c.top_k, c.experts},
                           nullptr)
                      .ok())
          << what;
      EXPECT_EQ(d_offsets.download(), offsets) << what;
      EXPECT_EQ(d_rows.download(), rows) << what;
      EXPECT_EQ(d_slots.download(), slots) << what;
      expect_same_bits(d_combine_weights.download(), combine_weights, what);
    }
}

// Routing and planning in one op (one warp for one token, one CTA up to 64 tokens, two kernels
// above): everything it writes equals the twins' route then plan, at decode sizes, at the fused
// limit and past it; for one and two tokens also with tied logits (ties go to the lower expert)
// and with NaN logits (NaN last).
TEST(MoeOpsGpu, RoutePlanBitExact) {
  Rng rng(17);
  enum Logits { kRandom, kTied, kSomeNaN };
  for (const auto& [experts, top_k] : {std::pair{128, 8}, std::pair{8, 2}, std::pair{60, 32}})
    for (int n : {1, 2, 7, 64, 65, 300})
      for (const Logits kind : {kRandom, kTied, kSomeNaN}) {
        if (kind != kRandom && n > 2) continue;
        const std::string what = std::to_string(experts) + " experts top-" + std::to_string(top_k) + ", n " +
                                 std::to_string(n) + (kind == kTied ? ", tied" : kind == kSomeNaN ? ", NaN" : "");
        const std::size_t pairs = static_cast<std::size_t>(n) * top_k;
        std::vector<float> logits(static_cast<std::size_t>(n) * experts);
        for (std::size_t i = 0; i < logits.size(); ++i)
          logits[i] = kind == kTied      ? 0.5f
                      : kind == kSomeNaN && i % 3 == 1 ? std::numeric_limits<float>::quiet_NaN()
                                                       : static_cast<float>(rng.normal() * 2.0);
        std::vector<std::int32_t> chosen(pairs), offsets(experts + 1), rows(pairs), slots(pairs);
        std::vector<bf16> weights(pairs), combine_weights(pairs);
        ASSERT_TRUE(cpu::moe_route_plan({logits.data(), chosen.data(), weights.data(), n, experts, top_k, true},
                                        {chosen.data(), weights.data(), offsets.data(), rows.data(), slots.data(),
                                         combine_weights.data(), n, top_k, experts})
                        .ok())
            << what;
        DeviceBuffer<float> d_logits(logits);
        DeviceBuffer<std::int32_t> d_chosen(pairs), d_offsets(offsets.size()), d_rows(pairs), d_slots(pairs);
        DeviceBuffer<bf16> d_weights(pairs), d_combine_weights(pairs);
        for (auto* b : {&d_chosen, &d_offsets, &d_rows, &d_slots}) b->fill_bytes(0xFF);
        d_weights.fill_bytes(0xFF);
        d_combine_weights.fill_bytes(0xFF);
        ASSERT_TRUE(moe_route_plan({d_logits.get(), d_chosen.get(), d_weights.get(), n, experts, top_k, true},
                                   {d_chosen.get(), d_weights.get(), d_offsets.get(), d_rows.get(), d_slots.get(),
                                    d_combine_weights.get(), n, top_k, experts},
                                   nullptr)
                        .ok())
            << what;
        EXPECT_EQ(d_chosen.download(), chosen) << what;
        expect_same_values(d_weights.download(), weights, "routing weights " + what);
        EXPECT_EQ(d_offsets.download(), offsets) << what;
        EXPECT_EQ(d_rows.download(), rows) << what;
        EXPECT_EQ(d_slots.download(), slots) << what;
        expect_same_values(d_combine_weights.download(), combine_weights, "combine weights " + what);
      }
}

// What the kernel cannot report: a token routed out of range or twice gets -1 slots (NaN in
// moe_combine); the other tokens keep their plan.
TEST(MoeOpsGpu, PlanMarksBadRoutingInsteadOfWritingOutOfBounds) {
  const std::vector<std::int32_t> experts = {0, 1, /* bad */ 2, 9, /* twice */ 3, 3, 1, 2};
  const std::vector<bf16> weights(experts.size(), float_to_bf16(0.5f));
  DeviceBuffer<std::int32_t> d_experts(experts), d_offsets(5), d_rows(8), d_slots(8);
  DeviceBuffer<bf16> d_weights(weights), d_combine_weights(8);
  ASSERT_TRUE(moe_plan({d_experts.get(), d_weights.get(), d_offsets.get(), d_rows.get(), d_slots.get(),
                        d_combine_weights.get(), 4, 2, 4},
                       nullptr)
                  .ok());
  const std::vector<std::int32_t> slots = d_slots.download();
  EXPECT_EQ(slots[2], -1);
  EXPECT_EQ(slots[3], -1);
  EXPECT_EQ(slots[4], -1);
  EXPECT_EQ(slots[5], -1);
  // expert 0: token 0; expert 1: tokens 0, 3; expert 2: tokens 1, 3; expert 3: token 2 twice.
  EXPECT_EQ(d_offsets.download(), (std::vector<std::int32_t>{0, 1, 3, 5, 7}));
  EXPECT_EQ(slots[0], 0);
  EXPECT_EQ(slots[1], 1);
  EXPECT_EQ(slots[6], 2);
  EXPECT_EQ(slots[7], 4);
}

// The grouped GEMM's input: h's rows quantized in expert order (QuantizeArgs::rows), then the
// combine, both bit for bit with the twins; a row index out of range quantizes a row of NaN.
TEST(MoeOpsGpu, GatheredQuantizeAndCombineBitExact) {
  Rng rng(12);
  for (int hidden : {256, 2048, 4096})
    for (const auto& [n, top_k, experts] :
         {std::tuple{1, 8, 128}, std::tuple{37, 2, 8}, std::tuple{200, 8, 128}, std::tuple{5, 12, 64}}) {
      const std::string what = "hidden " + std::to_string(hidden) + " n " + std::to_string(n);
      std::vector<std::int32_t> chosen(static_cast<std::size_t>(n) * top_k);
      std::vector<bf16> weights(chosen.size());
      for (int t = 0; t < n; ++t)
        for (int j = 0; j < top_k; ++j) {  // distinct experts per token
          chosen[static_cast<std::size_t>(t) * top_k + j] = static_cast<std::int32_t>((t * 5 + j * 3) % experts);
          weights[static_cast<std::size_t>(t) * top_k + j] = float_to_bf16(static_cast<float>(rng.uniform()));
        }
      MoePlan plan;
      ASSERT_TRUE(plan_moe(chosen.data(), weights.data(), n, top_k, experts, &plan).ok()) << what;
      const int pairs = n * top_k;

      const std::vector<bf16> h = random_bf16(static_cast<std::size_t>(n) * hidden, rng);
      const std::size_t scale_count = static_cast<std::size_t>(pairs) * (hidden / kQuantGroup);
      std::vector<fp8_e4m3> want_q8(static_cast<std::size_t>(pairs) * hidden);
      std::vector<float> want_scales(scale_count);
      ASSERT_TRUE(cpu::quantize_per_token_group(
                      {h.data(), want_q8.data(), want_scales.data(), pairs, hidden, plan.gather_rows.data(), n})
                      .ok());
      // The kernel's answer to a bad index: the last row's index made -1, the twin given a NaN row.
      std::vector<std::int32_t> rows = plan.gather_rows;
      rows.back() = -1;
      // (Own buffers: the last row's scales are not 16-byte aligned within want_scales.)
      std::vector<bf16> nan_row(hidden, bf16{0x7fc0});
      std::vector<fp8_e4m3> nan_q8(hidden);
      std::vector<float> nan_scales(hidden / kQuantGroup);
      ASSERT_TRUE(cpu::quantize_per_token_group({nan_row.data(), nan_q8.data(), nan_scales.data(), 1, hidden}).ok());
      std::copy(nan_q8.begin(), nan_q8.end(), want_q8.end() - hidden);
      std::copy(nan_scales.begin(), nan_scales.end(), want_scales.end() - hidden / kQuantGroup);
      DeviceBuffer<bf16> d_h(h);
      DeviceBuffer<std::int32_t> d_rows(rows);
      DeviceBuffer<fp8_e4m3> d_q8(want_q8.size());
      DeviceBuffer<float> d_scales(scale_count);
      d_q8.fill_bytes(0xFF);
      d_scales.fill_bytes(0xFF);
      ASSERT_TRUE(quantize_per_token_group({d_h.get(), d_q8.get(), d_scales.get(), pairs, hidden, d_rows.get(), n},
                                           nullptr)
                      .ok());
      expect_same_bits(d_q8.download(), want_q8, "gathered quantize, codes, " + what);
      expect_same_bits(d_scales.download(), want_scales, "gathered quantize, scales, " + what);

      const std::vector<bf16> expert_out = random_bf16(static_cast<std::size_t>(pairs) * hidden, rng);
      std::vector<bf16> x = random_bf16(static_cast<std::size_t>(n) * hidden, rng);
      DeviceBuffer<bf16> d_x(x), d_out(expert_out), d_w(plan.combine_weights);
      DeviceBuffer<std::int32_t> d_slots(plan.combine_slots);
      ASSERT_TRUE(cpu::moe_combine({x.data(), expert_out.data(), plan.combine_slots.data(), plan.combine_weights.data(),
                                    n, top_k, hidden, pairs})
                      .ok());
      ASSERT_TRUE(
          moe_combine({d_x.get(), d_out.get(), d_slots.get(), d_w.get(), n, top_k, hidden, pairs}, nullptr).ok());
      expect_same_bits(d_x.download(), x, "combine " + what);

      // With the next layer's norm fused: x as above, q8 and scales as rmsnorm_quantize's twin.
      const std::vector<bf16> x0 = random_bf16(static_cast<std::size_t>(n) * hidden, rng);
      const std::vector<bf16> norm_w = random_bf16(hidden, rng);
      std::vector<bf16> xn = x0;
      std::vector<fp8_e4m3> norm_q8(static_cast<std::size_t>(n) * hidden);
      std::vector<float> norm_scales(static_cast<std::size_t>(n) * (hidden / kQuantGroup));
      MoeCombineArgs cpu_args{xn.data(), expert_out.data(), plan.combine_slots.data(), plan.combine_weights.data(),
                              n, top_k, hidden, pairs};
      cpu_args.norm_weight = norm_w.data(), cpu_args.q8 = norm_q8.data(), cpu_args.q8_scales = norm_scales.data();
      cpu_args.eps = 1e-6f;
      ASSERT_TRUE(cpu::moe_combine(cpu_args).ok()) << what;
      DeviceBuffer<bf16> d_xn(x0), d_norm_w(norm_w);
      DeviceBuffer<fp8_e4m3> d_norm_q8(norm_q8.size());
      DeviceBuffer<float> d_norm_scales(norm_scales.size());
      d_norm_q8.fill_bytes(0xFF);
      d_norm_scales.fill_bytes(0xFF);
      MoeCombineArgs gpu_args{d_xn.get(), d_out.get(), d_slots.get(), d_w.get(), n, top_k, hidden, pairs};
      gpu_args.norm_weight = d_norm_w.get(), gpu_args.q8 = d_norm_q8.get(), gpu_args.q8_scales = d_norm_scales.get();
      gpu_args.eps = 1e-6f;
      ASSERT_TRUE(moe_combine(gpu_args, nullptr).ok()) << what;
      expect_same_bits(d_xn.download(), xn, "combine + norm, x, " + what);
      expect_same_bits(d_norm_q8.download(), norm_q8, "combine + norm, codes, " + what);
      expect_same_bits(d_norm_scales.download(), norm_scales, "combine + norm, scales, " + what);
    }
}

TEST(MoeOpsGpu, LaunchersRefuseBadArguments) {
  DeviceBuffer<bf16> buf(64);
  DeviceBuffer<std::int32_t> rows(1);
  DeviceBuffer<fp8_e4m3> q8(64);
  DeviceBuffer<float> scales(1);
  Status s = quantize_per_token_group({buf.get(), q8.get(), scales.get(), 1, 64, rows.get(), 0}, nullptr);
  EXPECT_NE(s.message().find("in_rows = 0 must be >= 1"), std::string::npos) << s.message();
  DeviceBuffer<float> logits(64);
  DeviceBuffer<std::int32_t> experts(64);
  s = moe_route({logits.get(), experts.get(), buf.get(), 1, 64, 33, true}, nullptr);
  EXPECT_NE(s.message().find("top_k = 33 exceeds"), std::string::npos) << s.message();
  s = moe_plan({experts.get(), buf.get(), experts.get(), experts.get(), experts.get(), buf.get(), 1, 33, 64}, nullptr);
  EXPECT_NE(s.message().find("moe_plan: top_k = 33 exceeds"), std::string::npos) << s.message();
  s = moe_plan({experts.get(), buf.get(), experts.get(), experts.get(), experts.get(), buf.get(), 1, 2, 1025}, nullptr);
  EXPECT_NE(s.message().find("moe_plan: num_experts = 1025 exceeds"), std::string::npos) << s.message();
  s = moe_combine({buf.get(), buf.get(), experts.get(), buf.get(), 1, 33, 8, 33}, nullptr);
  EXPECT_NE(s.message().find("moe_combine: top_k = 33 exceeds"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace fp8lm
