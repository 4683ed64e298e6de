// The operations of a Qwen3-MoE sparse block (transformers' Qwen3MoeSparseMoeBlock) around the
// experts' FP8 GEMMs, each with a CUDA launcher (namespace fp8lm) and a CPU twin (fp8lm::cpu)
// taking the same argument struct, plus the plan that orders tokens by expert (on the host:
// plan_moe; on the backend: moe_plan, its device twin).
//
// A sparse block for n tokens (engine/model/qwen3_model.cpp), with no host synchronisation:
//   logits  = h . router^T              bf16 x bf16 -> fp32 (the lm_head op; see MoeRouteArgs)
//   route   : per token top_k experts and bf16 weights (moe_route)
//   plan    : rows sorted by expert, offsets per expert (moe_plan; with the routing in one op and,
//             for decode-sized calls, one launch: moe_route_plan)
//   all experts at once: quantize (gathering h's rows into expert order: QuantizeArgs::rows) ->
//             grouped FP8 GEMM gate_up -> silu_mul_quantize -> grouped FP8 GEMM down
//             (fp8lm/grouped_gemm.h, reading moe_plan's offsets)
//   combine : x += weighted sum of each token's expert outputs (moe_combine)
//
// tests/gpu/moe_ops_gpu_test.cpp checks the launchers against the twins (bit for bit; all passed
// on an H200, 2026-11-28).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "fp8lm/layer_ops.h"

#include "fp8lm/numerics.h"
#include "fp8lm/status.h"

namespace fp8lm {

// Routing as transformers computes it (Qwen3MoeSparseMoeBlock.forward in modeling_qwen3_moe:
// softmax(router_logits, dtype=float), topk, /= sum when norm_topk_prob, .to(hidden dtype)); the
// last fp32 bits may differ from torch's own softmax kernel (its exp and summation order).
// router_logits = gate(h) is a bf16 Linear, so the fp32
// GEMM result is rounded to bf16; softmax over all experts in fp32 (max, exp(l - max), sequential
// sum over experts in index order, divide); the top_k probabilities (ties: the lower expert index
// first, largest first); when norm_topk_prob, each divided by their sum (summed in that order);
// weights rounded to bf16 (the hidden dtype). exp is math::exp_f32, so both backends agree bit for
// bit (fp8lm/moe_math.h). 1 <= top_k <= num_experts.
struct MoeRouteArgs {
  const float* logits;      // [n, num_experts] fp32 router GEMM output (rounded to bf16 here)
  std::int32_t* experts;    // [n, top_k] chosen expert ids, by decreasing probability
  bf16* weights;            // [n, top_k] their routing weights
  int n;
  int num_experts;
  int top_k;
  bool norm_topk_prob;
};

// The weighted sum into the residual, in transformers' roundings: the block's output starts at
// zero and, expert by expert in increasing index (index_add_ per expert), adds
// bf16(expert_out * weight) with a bf16 rounding after each add; the decoder layer then adds it to
// the residual: x = bf16(x + sum). For token t, slots[t * top_k + j] (j = 0 .. top_k - 1, in
// increasing expert index, as plan_moe orders them) is the row of expert_out holding its j-th
// expert's output and weights[t * top_k + j] that expert's weight. GPU: hidden % 8 == 0.
// With norm_weight set, the op also computes the next layer's quantized input norm from the
// updated rows, exactly rmsnorm_quantize({x, nullptr, norm_weight, nullptr, q8, q8_scales, n,
// hidden, eps}) (one launch less per MoE layer on the GPU; hidden % 16 == 0 then).
struct MoeCombineArgs {
  bf16* x;                      // [n, hidden] residual stream, updated in place
  const bf16* expert_out;       // [rows, hidden] expert outputs in expert order
  const std::int32_t* slots;    // [n, top_k]
  const bf16* weights;          // [n, top_k]
  int n;
  int top_k;
  int hidden;
  int rows;                     // rows of expert_out (n * top_k); slots must be in [0, rows)
  const bf16* norm_weight = nullptr;  // [hidden], optional: the next norm
  fp8_e4m3* q8 = nullptr;             // [n, hidden] with norm_weight
  float* q8_scales = nullptr;         // [n, ceil(hidden / 128)] with norm_weight
  float eps = 0.0f;

  // The norm as rmsnorm_quantize's arguments (meaningful with norm_weight set).
  RmsNormQuantizeArgs norm() const { return {x, nullptr, norm_weight, nullptr, q8, q8_scales, n, hidden, eps}; }
};

// Host side: which rows each expert computes, from moe_route's output.
struct MoePlan {
  std::vector<int> offsets;                 // [num_experts + 1]: expert e owns sorted rows [offsets[e], offsets[e+1])
  std::vector<std::int32_t> gather_rows;    // [n * top_k]: the token of each sorted row (increasing within an expert)
  std::vector<std::int32_t> combine_slots;  // [n * top_k]: MoeCombineArgs::slots
  std::vector<bf16> combine_weights;        // [n * top_k]: MoeCombineArgs::weights
};
// Fails (naming the token) on an expert id outside [0, num_experts) or chosen twice by one token.
Status plan_moe(const std::int32_t* experts, const bf16* weights, int n, int top_k, int num_experts, MoePlan* out);

// plan_moe on the backend, so that a MoE layer never waits for the host: the same four arrays,
// bit for bit, written to backend memory (the CPU twin runs plan_moe itself). The kernel cannot
// report bad routing (moe_route's never is): an expert id outside [0, num_experts) is not counted
// and a token with such an id, or with one expert twice, gets combine_slots -1 throughout, which
// moe_combine turns into NaN; every write stays inside the arrays. GPU: num_experts <=
// kMaxPlanExperts, top_k <= kMaxPlanTopK; one CTA (cheap at decode, linear in n * top_k).
inline constexpr int kMaxPlanExperts = 1024;
inline constexpr int kMaxPlanTopK = 32;
struct MoePlanArgs {
  const std::int32_t* experts;   // [n, top_k] moe_route's expert ids
  const bf16* weights;           // [n, top_k] their routing weights
  std::int32_t* offsets;         // [num_experts + 1]: MoePlan::offsets
  std::int32_t* gather_rows;     // [n * top_k]: MoePlan::gather_rows
  std::int32_t* combine_slots;   // [n * top_k]: MoePlan::combine_slots
  bf16* combine_weights;         // [n * top_k]: MoePlan::combine_weights
  int n;
  int top_k;
  int num_experts;
};

// Checks shared by each launcher and its twin; n == 0 (count == 0) is a valid no-op.
Status validate(const MoeRouteArgs& args);
Status validate(const MoePlanArgs& args);
Status validate(const MoeCombineArgs& args);
// moe_route_plan: each valid, and the plan reads what the routing writes (same n, top_k,
// num_experts, experts and weights).
Status validate(const MoeRouteArgs& route, const MoePlanArgs& plan);

// GPU launchers: validate, then enqueue on `stream`.
Status moe_route(const MoeRouteArgs& args, cudaStream_t stream);
Status moe_plan(const MoePlanArgs& args, cudaStream_t stream);
// moe_route then moe_plan; for up to 64 tokens in one launch (the decode step's MoE layers).
Status moe_route_plan(const MoeRouteArgs& route, const MoePlanArgs& plan, cudaStream_t stream);
Status moe_combine(const MoeCombineArgs& args, cudaStream_t stream);

// CPU twins: bit for bit what the launchers compute. combine also checks every row index;
// moe_plan fails as plan_moe does on bad routing.
namespace cpu {
Status moe_route(const MoeRouteArgs& args);
Status moe_plan(const MoePlanArgs& args);
Status moe_route_plan(const MoeRouteArgs& route, const MoePlanArgs& plan);
Status moe_combine(const MoeCombineArgs& args);
}  // namespace cpu

}  // namespace fp8lm
