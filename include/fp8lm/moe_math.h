// The per-token arithmetic of MoE routing and combining, so the kernels and their CPU twins
// compute the same bits (IEEE fp32 operations only, as in fp8lm/layer_math.h): the routing's order
// of operations (the kernel runs it on a warp, route_token serially) and combine_add. bf16
// conversions differ between host and device code, so callers pass them in: `logit(e)` returns
// expert e's router logit already rounded to bf16, `round_bf16(v)` rounds an fp32 value to bf16
// and back (round to nearest even on both sides).
#pragma once

#include <cstdint>

#include "fp8lm/layer_math.h"

namespace fp8lm::math {

// Routing of one token is spread over the 32 lanes of a warp on the GPU; expert e belongs to lane
// e % kRouteLanes. The twin runs the same order of operations serially.
constexpr int kRouteLanes = 32;

// The order in which routing picks experts: higher probability first, ties to the lower expert
// index, NaN below every number. A strict total order, so a warp's tree of comparisons picks the
// same expert as a serial scan.
FP8LM_HOST_DEVICE bool route_before(float p, int e, float q, int f) {
  const bool p_nan = p != p, q_nan = q != q;
  if (p_nan || q_nan) return p_nan == q_nan ? e < f : q_nan;
  return p > q || (p == q && e < f);
}

// The softmax denominator in the warp's order: each lane sums the exps of its experts in
// increasing index, then the 32 partial sums meet in a butterfly (lane i adds lane i ^ 16, i ^ 8,
// ..., i ^ 1; fp32 addition is commutative, so every lane ends with the same bits). This is that
// butterfly on the host, over the lanes' partial sums.
inline float route_butterfly_sum(float (&lane_sum)[kRouteLanes]) {
  for (int offset = kRouteLanes / 2; offset >= 1; offset /= 2) {
    float next[kRouteLanes];
    for (int lane = 0; lane < kRouteLanes; ++lane) next[lane] = add_rn(lane_sum[lane], lane_sum[lane ^ offset]);
    for (int lane = 0; lane < kRouteLanes; ++lane) lane_sum[lane] = next[lane];
  }
  return lane_sum[0];
}

// Routing of one token (MoeRouteArgs in fp8lm/moe_ops.h), serially (the CPU twin; kernels/moe/
// moe.cu computes the same bits a warp per token): softmax over the bf16 logits in fp32, top_k by
// probability (route_before), optional renormalisation. Writes the experts and their fp32 weights
// (the caller rounds them to bf16).
template <typename Logit>
void route_token(Logit logit, int num_experts, int top_k, bool norm_topk_prob, std::int32_t* experts,
                 float* weights) {
  float max_logit = logit(0);
  for (int e = 1; e < num_experts; ++e) max_logit = fmaxf(max_logit, logit(e));
  float lane_sum[kRouteLanes] = {};
  for (int e = 0; e < num_experts; ++e)
    lane_sum[e % kRouteLanes] = add_rn(lane_sum[e % kRouteLanes], exp_f32(add_rn(logit(e), -max_logit)));
  const float sum = route_butterfly_sum(lane_sum);
  auto probability = [&](int e) { return div_rn(exp_f32(add_rn(logit(e), -max_logit)), sum); };

  float chosen_sum = 0.0f;
  for (int j = 0; j < top_k; ++j) {
    int best = -1;
    float best_p = 0.0f;
    for (int e = 0; e < num_experts; ++e) {
      bool taken = false;
      for (int i = 0; i < j; ++i) taken = taken || experts[i] == e;
      if (taken) continue;
      const float p = probability(e);
      if (best < 0 || route_before(p, e, best_p, best)) best = e, best_p = p;
    }
    experts[j] = best;
    weights[j] = best_p;
    chosen_sum = add_rn(chosen_sum, best_p);
  }
  if (norm_topk_prob)
    for (int j = 0; j < top_k; ++j) weights[j] = div_rn(weights[j], chosen_sum);
}

// One term of MoeCombineArgs' sum (start from sum = 0, as index_add_ into zeros does):
// bf16(sum + bf16(out * weight)).
template <typename RoundBf16>
FP8LM_HOST_DEVICE float combine_add(float sum, float out, float weight, RoundBf16 round_bf16) {
  return round_bf16(add_rn(sum, round_bf16(mul_rn(out, weight))));
}

}  // namespace fp8lm::math
