// The per-token arithmetic of MoE routing and combining, shared by the kernels and their CPU twins
// so both compute the same bits (IEEE fp32 operations only, as in fp8lm/layer_math.h). bf16
// conversions differ between host and device code, so callers pass them in: `logit(e)` returns
// expert e's router logit already rounded to bf16, `round_bf16(v)` rounds an fp32 value to bf16
// and back (round to nearest even on both sides).
#pragma once

#include <cstdint>

#include "fp8lm/layer_math.h"

namespace fp8lm::math {

// Routing of one token (MoeRouteArgs in fp8lm/moe_ops.h): softmax over the bf16 logits in fp32,
// top_k by probability (ties: lower expert index), optional renormalisation. Writes the experts
// and their fp32 weights (the caller rounds them to bf16). Probabilities are recomputed rather than
// stored, so a GPU thread needs no per-expert array (num_experts * top_k exps per token:
// negligible next to the experts' GEMMs).
template <typename Logit>
FP8LM_HOST_DEVICE void route_token(Logit logit, int num_experts, int top_k, bool norm_topk_prob,
                                   std::int32_t* experts, float* weights) {
  float max_logit = logit(0);
  for (int e = 1; e < num_experts; ++e) max_logit = fmaxf(max_logit, logit(e));
  float sum = 0.0f;
  for (int e = 0; e < num_experts; ++e) sum = add_rn(sum, exp_f32(add_rn(logit(e), -max_logit)));
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
      if (best < 0 || p > best_p) best = e, best_p = p;
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
