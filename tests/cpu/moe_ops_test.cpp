// The MoE ops' CPU twins against hand-computed cases: routing (softmax of bf16 logits, top-k,
// renormalisation, bf16 weights), the host plan and its backend form moe_plan, gather, and the
// combine's bf16 rounding order.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "fp8lm/moe_ops.h"
#include "fp8lm/random.h"

namespace fp8lm {
namespace {

float f(bf16 v) { return bf16_to_float(v); }

std::vector<bf16> to_bf16(const std::vector<float>& v) {
  std::vector<bf16> out;
  for (float x : v) out.push_back(float_to_bf16(x));
  return out;
}

// logits {1, 3, 2, 0.5}: p = e^(l - 3) / sum = {0.0854, 0.6308, 0.2321, 0.0518}; top-2 = experts 1, 2;
// renormalised 0.6308 / 0.8629 = sigmoid(1) = 0.731059 -> bf16 0.73046875 (187/256) and
// 0.268941 -> bf16 0.26953125 (138/512); unnormalised 0.630797 -> 0.62890625 (161/256) and
// 0.232059 -> 0.232421875 (238/1024).
TEST(MoeRoute, HandComputedSoftmaxTopKAndRenormalisation) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 0.5f};
  std::vector<std::int32_t> experts(2);
  std::vector<bf16> weights(2);
  ASSERT_TRUE(cpu::moe_route({logits.data(), experts.data(), weights.data(), 1, 4, 2, true}).ok());
  EXPECT_EQ(experts, (std::vector<std::int32_t>{1, 2}));
  EXPECT_EQ(f(weights[0]), 0.73046875f);
  EXPECT_EQ(f(weights[1]), 0.26953125f);

  ASSERT_TRUE(cpu::moe_route({logits.data(), experts.data(), weights.data(), 1, 4, 2, false}).ok());
  EXPECT_EQ(experts, (std::vector<std::int32_t>{1, 2}));
  EXPECT_EQ(f(weights[0]), 0.62890625f);
  EXPECT_EQ(f(weights[1]), 0.232421875f);
}

// transformers' router is a bf16 Linear: logits 1.001 and 1.0 are both bf16 1.0, an exact tie,
// which goes to the lower index; top-1 with renormalisation gives weight exactly 1.
TEST(MoeRoute, LogitsAreRoundedToBf16AndTiesGoToTheLowerIndex) {
  const std::vector<float> logits = {0.0f, 1.001f, 1.0f, -5.0f, /* token 1 */ 2.0f, 1.0f, 2.0f, 7.0f};
  std::vector<std::int32_t> experts(4);
  std::vector<bf16> weights(4);
  ASSERT_TRUE(cpu::moe_route({logits.data(), experts.data(), weights.data(), 2, 4, 2, true}).ok());
  EXPECT_EQ(experts, (std::vector<std::int32_t>{1, 2, 3, 0}));
  EXPECT_EQ(f(weights[0]), 0.5f);
  EXPECT_EQ(f(weights[1]), 0.5f);
  ASSERT_TRUE(cpu::moe_route({logits.data(), experts.data(), weights.data(), 2, 4, 1, true}).ok());
  EXPECT_EQ(experts[0], 1);
  EXPECT_EQ(f(weights[0]), 1.0f);
  EXPECT_EQ(experts[1], 3);
}

TEST(MoeRoute, Validation) {
  float logits[4] = {};
  std::int32_t experts[4];
  bf16 weights[4];
  Status s = cpu::moe_route({logits, experts, weights, 1, 4, 5, true});
  EXPECT_NE(s.message().find("top_k = 5 must be in [1, num_experts = 4]"), std::string::npos) << s.message();
  s = cpu::moe_route({nullptr, experts, weights, 1, 4, 2, true});
  EXPECT_NE(s.message().find("logits is a null pointer"), std::string::npos) << s.message();
  EXPECT_TRUE(cpu::moe_route({nullptr, nullptr, nullptr, 0, 4, 2, true}).ok());
}

// 3 tokens, top-2 over 3 experts: token 0 -> {2, 0}, token 1 -> {1, 2}, token 2 -> {0, 1}.
TEST(MoePlan, SortsRowsByExpertAndSlotsByExpertIndex) {
  const std::vector<std::int32_t> experts = {2, 0, 1, 2, 0, 1};
  const std::vector<bf16> weights = to_bf16({0.75f, 0.25f, 0.5f, 0.5f, 0.625f, 0.375f});
  MoePlan plan;
  ASSERT_TRUE(plan_moe(experts.data(), weights.data(), 3, 2, 3, &plan).ok());
  EXPECT_EQ(plan.offsets, (std::vector<int>{0, 2, 4, 6}));
  // expert 0: tokens 0, 2; expert 1: tokens 1, 2; expert 2: tokens 0, 1.
  EXPECT_EQ(plan.gather_rows, (std::vector<std::int32_t>{0, 2, 1, 2, 0, 1}));
  // token 0: expert 0 (row 0), expert 2 (row 4); token 1: expert 1 (row 2), expert 2 (row 5); ...
  EXPECT_EQ(plan.combine_slots, (std::vector<std::int32_t>{0, 4, 2, 5, 1, 3}));
  std::vector<float> w;
  for (bf16 v : plan.combine_weights) w.push_back(f(v));
  EXPECT_EQ(w, (std::vector<float>{0.25f, 0.75f, 0.5f, 0.5f, 0.625f, 0.375f}));
}

TEST(MoePlan, RefusesBadExpertIds) {
  const std::vector<bf16> weights = to_bf16({0.5f, 0.5f, 0.5f, 0.5f});
  MoePlan plan;
  const std::vector<std::int32_t> out_of_range = {0, 1, 1, 4};
  Status s = plan_moe(out_of_range.data(), weights.data(), 2, 2, 4, &plan);
  EXPECT_NE(s.message().find("token 1 routed to expert 4, outside [0, 4)"), std::string::npos) << s.message();
  const std::vector<std::int32_t> twice = {3, 3, 0, 1};
  s = plan_moe(twice.data(), weights.data(), 2, 2, 4, &plan);
  EXPECT_NE(s.message().find("token 0 routed to expert 3 twice"), std::string::npos) << s.message();
}

// moe_plan's twin writes plan_moe's arrays, and those keep their contract on random routings with
// empty experts (candidates < experts) and top_k up to 8 of 128: offsets count each expert's rows,
// each expert's rows hold its tokens in increasing order, each token's slots point at rows of its
// experts in increasing expert index, with the weight routed to that expert.
TEST(MoePlan, TwinMatchesPlanMoeOnRandomRoutings) {
  Rng rng(21);
  struct Case {
    int experts, top_k, candidates;
  };
  for (const Case c : {Case{128, 8, 128}, Case{128, 8, 20}, Case{128, 1, 3}, Case{8, 2, 8}, Case{16, 16, 16}})
    for (int n : {1, 2, 37, 700}) {
      const std::string what = std::to_string(c.experts) + " experts top-" + std::to_string(c.top_k) + " of " +
                               std::to_string(c.candidates) + ", n " + std::to_string(n);
      const int pairs = n * c.top_k;
      const std::vector<std::int32_t> experts = random_routing(n, c.experts, c.top_k, rng, c.candidates);
      std::vector<bf16> weights(pairs);
      for (bf16& w : weights) w = float_to_bf16(static_cast<float>(rng.uniform()));
      MoePlan want;
      ASSERT_TRUE(plan_moe(experts.data(), weights.data(), n, c.top_k, c.experts, &want).ok()) << what;

      std::vector<std::int32_t> offsets(c.experts + 1, -7), rows(pairs, -7), slots(pairs, -7);
      std::vector<bf16> combine_weights(pairs);
      ASSERT_TRUE(cpu::moe_plan({experts.data(), weights.data(), offsets.data(), rows.data(), slots.data(),
                                 combine_weights.data(), n, c.top_k, c.experts})
                      .ok())
          << what;
      EXPECT_EQ(offsets, std::vector<std::int32_t>(want.offsets.begin(), want.offsets.end())) << what;
      EXPECT_EQ(rows, want.gather_rows) << what;
      EXPECT_EQ(slots, want.combine_slots) << what;
      for (int i = 0; i < pairs; ++i) ASSERT_EQ(combine_weights[i].bits, want.combine_weights[i].bits) << what;

      ASSERT_EQ(offsets[0], 0) << what;
      ASSERT_EQ(offsets[c.experts], pairs) << what;
      bool some_empty = false;
      for (int e = 0; e < c.experts; ++e) {
        int count = 0;
        for (std::int32_t x : experts) count += x == e;
        ASSERT_EQ(offsets[e + 1] - offsets[e], count) << what << " expert " << e;
        some_empty = some_empty || count == 0;
        for (int r = offsets[e] + 1; r < offsets[e + 1]; ++r) ASSERT_LT(rows[r - 1], rows[r]) << what;
      }
      if (c.candidates < c.experts) {
        EXPECT_TRUE(some_empty) << what;
      }
      for (int t = 0; t < n; ++t)
        for (int j = 0; j < c.top_k; ++j) {
          const std::int32_t slot = slots[t * c.top_k + j];
          ASSERT_EQ(rows[slot], t) << what;
          const int e = static_cast<int>(std::upper_bound(offsets.begin(), offsets.end(), slot) - offsets.begin()) - 1;
          if (j > 0) {
            ASSERT_GT(slot, slots[t * c.top_k + j - 1]) << what;  // rows of later experts come later
          }
          const auto chosen = std::find(experts.begin() + t * c.top_k, experts.begin() + (t + 1) * c.top_k, e);
          ASSERT_NE(chosen, experts.begin() + (t + 1) * c.top_k) << what;
          ASSERT_EQ(combine_weights[t * c.top_k + j].bits, weights[chosen - experts.begin()].bits) << what;
        }
    }
}

TEST(MoePlan, TwinValidatesAndRefusesBadRouting) {
  const std::vector<bf16> weights = to_bf16({0.5f, 0.5f, 0.5f, 0.5f});
  std::vector<std::int32_t> offsets(5), rows(4), slots(4);
  std::vector<bf16> w(4);
  const std::vector<std::int32_t> twice = {0, 1, 2, 2};
  MoePlanArgs args{twice.data(), weights.data(), offsets.data(), rows.data(), slots.data(), w.data(), 2, 2, 4};
  Status s = cpu::moe_plan(args);
  EXPECT_NE(s.message().find("token 1 routed to expert 2 twice"), std::string::npos) << s.message();
  MoePlanArgs bad = args;
  bad.top_k = 5;
  s = cpu::moe_plan(bad);
  EXPECT_NE(s.message().find("moe_plan: top_k = 5 must be in [1, num_experts = 4]"), std::string::npos) << s.message();
  bad = args;
  bad.offsets = nullptr;
  s = cpu::moe_plan(bad);
  EXPECT_NE(s.message().find("moe_plan: offsets is a null pointer"), std::string::npos) << s.message();
  EXPECT_TRUE(cpu::moe_plan({nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 2, 4}).ok());
}

// The sum rounds to bf16 after every add, in slot order, then adds to x: channel 0 is
// 1 + 3/1024 + 3/1024, which stays 1 (each addend is below half a bf16 ulp of 1) where one fp32
// sum would round to 1.0078125; channel 1 with weights 0.5 is 1.5 + 1.0078125 = 2.5078125, a tie
// between bf16 2.5 and 2.515625 that rounds to even (2.5), plus x = 10.
// moe_route_plan is moe_route then moe_plan, and the plan must read what the routing writes.
TEST(MoeRoutePlan, EqualsRouteThenPlanAndChecksTheyShareBuffers) {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 1.0f, /* token 1 */ 3.0f, 0.0f, 0.25f, 2.5f};
  std::vector<std::int32_t> experts(4), offsets(5), rows(4), slots(4);
  std::vector<bf16> weights(4), combine_weights(4);
  const MoeRouteArgs route{logits.data(), experts.data(), weights.data(), 2, 4, 2, true};
  const MoePlanArgs plan{experts.data(), weights.data(), offsets.data(), rows.data(), slots.data(),
                         combine_weights.data(), 2, 2, 4};
  ASSERT_TRUE(cpu::moe_route_plan(route, plan).ok());
  std::vector<std::int32_t> want_experts(4), want_offsets(5), want_rows(4), want_slots(4);
  std::vector<bf16> want_weights(4), want_combine(4);
  ASSERT_TRUE(cpu::moe_route({logits.data(), want_experts.data(), want_weights.data(), 2, 4, 2, true}).ok());
  ASSERT_TRUE(cpu::moe_plan({want_experts.data(), want_weights.data(), want_offsets.data(), want_rows.data(),
                             want_slots.data(), want_combine.data(), 2, 2, 4})
                  .ok());
  EXPECT_EQ(experts, want_experts);
  EXPECT_EQ(offsets, want_offsets);
  EXPECT_EQ(rows, want_rows);
  EXPECT_EQ(slots, want_slots);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(weights[i].bits, want_weights[i].bits);
    EXPECT_EQ(combine_weights[i].bits, want_combine[i].bits);
  }

  MoePlanArgs elsewhere = plan;
  elsewhere.experts = want_experts.data();
  Status s = cpu::moe_route_plan(route, elsewhere);
  EXPECT_NE(s.message().find("the plan must read the experts and weights the routing writes"), std::string::npos)
      << s.message();
  MoePlanArgs fewer = plan;
  fewer.n = 1;
  s = cpu::moe_route_plan(route, fewer);
  EXPECT_NE(s.message().find("disagree on n, top_k or num_experts"), std::string::npos) << s.message();
}

TEST(MoeCombine, RoundsLikeIndexAddThenTheResidualAdd) {
  const int hidden = 2, top_k = 3;
  std::vector<bf16> x = to_bf16({0.0f, 10.0f});
  const std::vector<bf16> expert_out = to_bf16({1.0f, 3.0f, 0.0029296875f, 2.015625f, 0.0029296875f, 0.0f});
  const std::vector<std::int32_t> slots = {0, 1, 2};
  const std::vector<bf16> weights = to_bf16({1.0f, 1.0f, 1.0f});
  const std::vector<bf16> half_weights = to_bf16({0.5f, 0.5f, 0.5f});
  ASSERT_TRUE(cpu::moe_combine({x.data(), expert_out.data(), slots.data(), weights.data(), 1, top_k, hidden, 3}).ok());
  EXPECT_EQ(f(x[0]), 1.0f);
  EXPECT_EQ(f(x[1]), 15.0f);  // 3 + 2.015625 is a tie between bf16 5 and 5.03125: 5; 10 + 5
  x = to_bf16({0.0f, 10.0f});
  ASSERT_TRUE(
      cpu::moe_combine({x.data(), expert_out.data(), slots.data(), half_weights.data(), 1, top_k, hidden, 3}).ok());
  EXPECT_EQ(f(x[1]), 12.5f);

  const std::vector<std::int32_t> bad = {0, 1, 3};
  const Status s = cpu::moe_combine({x.data(), expert_out.data(), bad.data(), weights.data(), 1, top_k, hidden, 3});
  EXPECT_NE(s.message().find("slots[2] = 3 is outside [0, rows = 3)"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace fp8lm
