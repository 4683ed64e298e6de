// CPU twins of the MoE ops (fp8lm/moe_ops.h), their argument checks (shared with the launchers)
// and the host-side plan that sorts a chunk's (token, expert) pairs by expert.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>

#include "arg_checks.h"
#include "fp8lm/moe_math.h"
#include "fp8lm/moe_ops.h"

namespace fp8lm {

using namespace arg_checks;

namespace {
// n tokens, each choosing top_k of num_experts.
Status routing_sizes(int n, int num_experts, int top_k, const char* fn) {
  FP8LM_RETURN_IF_ERROR(non_negative(n, fn, "n"));
  FP8LM_RETURN_IF_ERROR(positive(num_experts, fn, "num_experts"));
  return need(top_k >= 1 && top_k <= num_experts, fn,
              "top_k = " + str(top_k) + " must be in [1, num_experts = " + str(num_experts) + "]");
}
}  // namespace

Status validate(const MoeRouteArgs& a) {
  constexpr const char* fn = "moe_route";
  FP8LM_RETURN_IF_ERROR(routing_sizes(a.n, a.num_experts, a.top_k, fn));
  if (a.n == 0) return Status::Ok();
  FP8LM_RETURN_IF_ERROR(not_null(a.logits, fn, "logits"));
  FP8LM_RETURN_IF_ERROR(not_null(a.experts, fn, "experts"));
  return not_null(a.weights, fn, "weights");
}

Status validate(const MoePlanArgs& a) {
  constexpr const char* fn = "moe_plan";
  FP8LM_RETURN_IF_ERROR(routing_sizes(a.n, a.num_experts, a.top_k, fn));
  // Slots and offsets are int32.
  FP8LM_RETURN_IF_ERROR(need(static_cast<long long>(a.n) * a.top_k <= INT32_MAX, fn,
                             "n * top_k = " + str(static_cast<long long>(a.n) * a.top_k) + " exceeds int32"));
  if (a.n == 0) return Status::Ok();
  FP8LM_RETURN_IF_ERROR(not_null(a.experts, fn, "experts"));
  FP8LM_RETURN_IF_ERROR(not_null(a.weights, fn, "weights"));
  FP8LM_RETURN_IF_ERROR(not_null(a.offsets, fn, "offsets"));
  FP8LM_RETURN_IF_ERROR(not_null(a.gather_rows, fn, "gather_rows"));
  FP8LM_RETURN_IF_ERROR(not_null(a.combine_slots, fn, "combine_slots"));
  return not_null(a.combine_weights, fn, "combine_weights");
}

Status validate(const MoeRouteArgs& route, const MoePlanArgs& plan) {
  constexpr const char* fn = "moe_route_plan";
  FP8LM_RETURN_IF_ERROR(validate(route));
  FP8LM_RETURN_IF_ERROR(validate(plan));
  FP8LM_RETURN_IF_ERROR(need(route.n == plan.n && route.top_k == plan.top_k && route.num_experts == plan.num_experts,
                             fn, "the routing and the plan disagree on n, top_k or num_experts"));
  return need(route.experts == plan.experts && route.weights == plan.weights, fn,
              "the plan must read the experts and weights the routing writes");
}

Status validate(const MoeCombineArgs& a) {
  constexpr const char* fn = "moe_combine";
  FP8LM_RETURN_IF_ERROR(non_negative(a.n, fn, "n"));
  FP8LM_RETURN_IF_ERROR(positive(a.top_k, fn, "top_k"));
  FP8LM_RETURN_IF_ERROR(positive(a.hidden, fn, "hidden"));
  FP8LM_RETURN_IF_ERROR(positive(a.rows, fn, "rows"));
  if (a.n == 0) return Status::Ok();
  FP8LM_RETURN_IF_ERROR(not_null(a.x, fn, "x"));
  FP8LM_RETURN_IF_ERROR(not_null(a.expert_out, fn, "expert_out"));
  FP8LM_RETURN_IF_ERROR(not_null(a.slots, fn, "slots"));
  FP8LM_RETURN_IF_ERROR(not_null(a.weights, fn, "weights"));
  return a.norm_weight == nullptr ? Status::Ok() : validate(a.norm());
}

Status plan_moe(const std::int32_t* experts, const bf16* weights, int n, int top_k, int num_experts, MoePlan* out) {
  const std::size_t pairs = static_cast<std::size_t>(n) * top_k;
  MoePlan plan;
  plan.offsets.assign(num_experts + 1, 0);
  for (int t = 0; t < n; ++t)
    for (int j = 0; j < top_k; ++j) {
      const std::int32_t e = experts[static_cast<std::size_t>(t) * top_k + j];
      if (e < 0 || e >= num_experts)
        return Status::Error("moe plan: token " + str(t) + " routed to expert " + str(e) + ", outside [0, " +
                             str(num_experts) + ")");
      for (int i = 0; i < j; ++i)
        if (experts[static_cast<std::size_t>(t) * top_k + i] == e)
          return Status::Error("moe plan: token " + str(t) + " routed to expert " + str(e) + " twice");
      ++plan.offsets[e + 1];
    }
  for (int e = 0; e < num_experts; ++e) plan.offsets[e + 1] += plan.offsets[e];

  // Rows of each expert in increasing token order; a token's slots in increasing expert order.
  std::vector<int> next(plan.offsets.begin(), plan.offsets.end() - 1);
  std::vector<int> order(top_k);
  plan.gather_rows.resize(pairs);
  plan.combine_slots.resize(pairs);
  plan.combine_weights.resize(pairs);
  for (int t = 0; t < n; ++t) {
    const std::size_t base = static_cast<std::size_t>(t) * top_k;
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int i, int j) { return experts[base + i] < experts[base + j]; });
    for (int j = 0; j < top_k; ++j) {
      const int slot = next[experts[base + order[j]]]++;
      plan.gather_rows[slot] = t;
      plan.combine_slots[base + j] = slot;
      plan.combine_weights[base + j] = weights[base + order[j]];
    }
  }
  *out = std::move(plan);
  return Status::Ok();
}

namespace cpu {

Status moe_route(const MoeRouteArgs& a) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  std::vector<float> weights(a.top_k);
  for (int t = 0; t < a.n; ++t) {
    const float* logits = a.logits + static_cast<std::size_t>(t) * a.num_experts;
    const std::size_t out = static_cast<std::size_t>(t) * a.top_k;
    math::route_token([&](int e) { return round_bf16(logits[e]); }, a.num_experts, a.top_k, a.norm_topk_prob,
                      a.experts + out, weights.data());
    for (int j = 0; j < a.top_k; ++j) a.weights[out + j] = float_to_bf16(weights[j]);
  }
  return Status::Ok();
}

Status moe_route_plan(const MoeRouteArgs& route, const MoePlanArgs& plan) {
  FP8LM_RETURN_IF_ERROR(validate(route, plan));
  FP8LM_RETURN_IF_ERROR(moe_route(route));
  return moe_plan(plan);
}

Status moe_plan(const MoePlanArgs& a) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  if (a.n == 0) return Status::Ok();
  MoePlan plan;
  FP8LM_RETURN_IF_ERROR(plan_moe(a.experts, a.weights, a.n, a.top_k, a.num_experts, &plan));
  std::copy(plan.offsets.begin(), plan.offsets.end(), a.offsets);
  std::copy(plan.gather_rows.begin(), plan.gather_rows.end(), a.gather_rows);
  std::copy(plan.combine_slots.begin(), plan.combine_slots.end(), a.combine_slots);
  std::copy(plan.combine_weights.begin(), plan.combine_weights.end(), a.combine_weights);
  return Status::Ok();
}

Status moe_combine(const MoeCombineArgs& a) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  const std::size_t pairs = static_cast<std::size_t>(a.n) * a.top_k;
  for (std::size_t i = 0; i < pairs; ++i)
    if (a.slots[i] < 0 || a.slots[i] >= a.rows)
      return Status::Error("moe_combine: slots[" + str(static_cast<long long>(i)) + "] = " + str(a.slots[i]) +
                           " is outside [0, rows = " + str(a.rows) + ")");
  for (int t = 0; t < a.n; ++t) {
    const std::int32_t* slots = a.slots + static_cast<std::size_t>(t) * a.top_k;
    const bf16* weights = a.weights + static_cast<std::size_t>(t) * a.top_k;
    bf16* x = a.x + static_cast<std::size_t>(t) * a.hidden;
    for (int c = 0; c < a.hidden; ++c) {
      float sum = 0.0f;
      for (int j = 0; j < a.top_k; ++j)
        sum = math::combine_add(sum, bf16_to_float(a.expert_out[static_cast<std::size_t>(slots[j]) * a.hidden + c]),
                                bf16_to_float(weights[j]), round_bf16);
      x[c] = float_to_bf16(bf16_to_float(x[c]) + sum);
    }
  }
  return a.norm_weight == nullptr ? Status::Ok() : rmsnorm_quantize(a.norm());
}

}  // namespace cpu

}  // namespace fp8lm
