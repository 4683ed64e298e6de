// The MoE ops around the experts' GEMMs (fp8lm/moe_ops.h); tests/gpu/moe_ops_gpu_test.cpp compares
// them with their CPU twins (all bit-exact on an H200, 2026-11-28).
//  - moe_route: a warp per token, in math::route_token's lane order (bit-exact with the twin);
//  - moe_plan: one CTA, a counting sort: shared-memory histogram, block scan into the offsets, then
//    one warp hands out rows in pair order (so within an expert in token order, as plan_moe does),
//    and one thread per token puts its slots in increasing expert order;
//  - moe_route_plan: both in one CTA for decode-sized calls (a launch less per MoE layer), on one
//    warp for one token;
//  - moe_combine: one CTA per token, 8 channels per thread, math::combine_add in the twin's order
//    (the token's slots and weights staged in shared memory, the expert rows loaded in batches);
//    optionally followed by the next layer's input norm of the row (rmsnorm_quantize's code).
#include <cuda_runtime.h>

#include <cub/block/block_scan.cuh>
#include <string>

#include "common/bf16_vec.cuh"
#include "common/knobs.h"
#include "common/pdl.cuh"
#include "norm/norm_quantize_row.cuh"
#include "fp8lm/cuda_status.h"
#include "fp8lm/moe_math.h"
#include "fp8lm/moe_ops.h"

namespace fp8lm {

namespace {

constexpr int kThreads = 256;
constexpr int kVec = 8;

// A warp per token (math::route_token's lane order): expert e in lane e % 32, slot e / 32.
constexpr int kRouteWarps = 4;
constexpr int kMaxRouteSlots = 8;  // 256 experts
constexpr int kMaxRouteExperts = kMaxRouteSlots * math::kRouteLanes;

// Routes token t on the calling warp (all 32 lanes).
__device__ void route_token_warp(const float* __restrict__ logits, std::int32_t* __restrict__ experts,
                                 bf16* __restrict__ weights, int t, int num_experts, int top_k, bool norm_topk_prob) {
  const int lane = threadIdx.x % 32;
  const float* row = logits + static_cast<std::size_t>(t) * num_experts;
  float p[kMaxRouteSlots];
  float max_logit = -INFINITY;
  bool any_number = false;
#pragma unroll
  for (int i = 0; i < kMaxRouteSlots; ++i) {
    const int e = lane + i * 32;
    p[i] = e < num_experts ? vec::round_bf16(row[e]) : 0.0f;
    if (e < num_experts) max_logit = fmaxf(max_logit, p[i]), any_number |= p[i] == p[i];
  }
  // fmaxf skips NaN, as the serial fmaxf chain does; all NaN gives NaN there, -inf here: fix up.
  max_logit = vec::warp_max(max_logit);
  if (!__any_sync(0xffffffffu, any_number)) max_logit = __uint_as_float(0x7fc00000u);
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < kMaxRouteSlots; ++i)
    if (lane + i * 32 < num_experts) {
      p[i] = math::exp_f32(math::add_rn(p[i], -max_logit));
      sum = math::add_rn(sum, p[i]);
    }
  sum = vec::warp_butterfly_sum(sum);  // math::route_token's lane-sum order: xor 16, 8, 4, 2, 1
#pragma unroll
  for (int i = 0; i < kMaxRouteSlots; ++i) p[i] = math::div_rn(p[i], sum);

  // Choice j is kept by lane j (top_k <= 32: no array indexed by j, which would live in local
  // memory), and the lanes write their choices at once at the end.
  static_assert(kMaxPlanTopK <= 32, "a lane per choice");
  unsigned taken = 0;  // bit i: slot i chosen
  float chosen_sum = 0.0f, my_w = 0.0f;
  int my_e = -1;
  for (int j = 0; j < top_k; ++j) {
    int best = -1;
    float best_p = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxRouteSlots; ++i) {
      const int e = lane + i * 32;
      if (e < num_experts && !(taken >> i & 1u) && (best < 0 || math::route_before(p[i], e, best_p, best)))
        best = e, best_p = p[i];
    }
    for (int offset = 16; offset >= 1; offset /= 2) {
      const int other = __shfl_xor_sync(0xffffffffu, best, offset);
      const float other_p = __shfl_xor_sync(0xffffffffu, best_p, offset);
      if (other >= 0 && (best < 0 || math::route_before(other_p, other, best_p, best))) best = other, best_p = other_p;
    }
    if (best % 32 == lane) taken |= 1u << (best / 32);
    if (lane == j) my_w = best_p, my_e = best;
    chosen_sum = math::add_rn(chosen_sum, best_p);
  }
  if (lane >= top_k) return;
  const std::size_t at = static_cast<std::size_t>(t) * top_k + lane;
  experts[at] = my_e;
  reinterpret_cast<__nv_bfloat16*>(weights)[at] =
      __float2bfloat16_rn(norm_topk_prob ? math::div_rn(my_w, chosen_sum) : my_w);
}

__global__ void __launch_bounds__(kRouteWarps * 32)
    route_kernel(const float* __restrict__ logits, std::int32_t* __restrict__ experts, bf16* __restrict__ weights,
                 int n, int num_experts, int top_k, bool norm_topk_prob) {
  pdl_wait();
  pdl_launch_dependents();
  const int t = blockIdx.x * kRouteWarps + threadIdx.x / 32;
  if (t < n) route_token_warp(logits, experts, weights, t, num_experts, top_k, norm_topk_prob);
}

// One thread per expert in the histogram and the scan.
constexpr int kPlanThreads = kMaxPlanExperts;

// The plan on one CTA of kPlanThreads threads. experts and weights: the routing, in global memory
// (an earlier kernel's output) or in this CTA's shared memory (written before a __syncthreads).
// pair_rows [n * top_k] holds each pair's row until the last step orders them per token: shared
// memory, or combine_slots itself (each token's entries are read before they are overwritten).
__device__ void plan_block(const std::int32_t* __restrict__ experts, const bf16* __restrict__ weights,
                           std::int32_t* __restrict__ offsets, std::int32_t* __restrict__ gather_rows,
                           std::int32_t* pair_rows, std::int32_t* combine_slots, bf16* __restrict__ combine_weights,
                           int n, int top_k, int num_experts) {
  using Scan = cub::BlockScan<int, kPlanThreads>;
  __shared__ typename Scan::TempStorage scan;
  __shared__ int next[kMaxPlanExperts];  // rows per expert, then each expert's next free row
  __shared__ int chunk[kPlanThreads];    // expert ids of a chunk of pairs, -1 when invalid
  const int tid = threadIdx.x, pairs = n * top_k;
  auto valid = [&](int e) { return e >= 0 && e < num_experts; };

  next[tid] = 0;
  __syncthreads();
  for (int p = tid; p < pairs; p += kPlanThreads)
    if (const int e = experts[p]; valid(e)) atomicAdd(&next[e], 1);
  __syncthreads();
  const int count = next[tid];
  int first;
  Scan(scan).ExclusiveSum(count, first);
  if (tid < num_experts) offsets[tid] = first;
  if (tid == num_experts - 1) offsets[num_experts] = first + count;
  next[tid] = first;
  __syncthreads();

  // Rows in pair order t * top_k + j, so each expert's rows come in increasing token order. The
  // whole CTA stages a chunk of ids (one memory latency), one warp walks it 32 pairs at a time:
  // lanes on the same expert take consecutive rows by lane order (__match_any_sync). Each pair's
  // row goes to pair_rows[pair] for now.
  for (int base = 0; base < pairs; base += kPlanThreads) {
    const int p = base + tid;
    const int e = p < pairs ? experts[p] : -1;
    chunk[tid] = valid(e) ? e : -1;
    __syncthreads();
    if (tid < 32) {
      for (int w = 0; w < kPlanThreads && base + w < pairs; w += 32) {
        const int q = base + w + tid, id = chunk[w + tid];
        const unsigned peers = __match_any_sync(0xffffffffu, id);
        const int rank = __popc(peers & ((1u << tid) - 1u));
        int row = -1;
        if (id >= 0) {
          row = next[id] + rank;
          gather_rows[row] = q / top_k;
        }
        __syncwarp();
        if (id >= 0 && rank == 0) next[id] += __popc(peers);
        __syncwarp();
        if (q < pairs) pair_rows[q] = row;
      }
    }
    __syncthreads();
  }

  // Each token's slots and weights in increasing expert index (moe_combine's order); a token with
  // an invalid or repeated expert gets -1 slots (NaN in moe_combine) instead.
  for (int t = tid; t < n; t += kPlanThreads) {
    const std::size_t base = static_cast<std::size_t>(t) * top_k;
    int rows[kMaxPlanTopK];
    bool ok = true;
    for (int j = 0; j < top_k; ++j) {
      rows[j] = pair_rows[base + j];
      const int e = experts[base + j];
      ok = ok && valid(e);
      for (int i = 0; i < j; ++i) ok = ok && experts[base + i] != e;
    }
    for (int j = 0; j < top_k; ++j) {
      const int e = experts[base + j];
      int position = 0;
      for (int i = 0; i < top_k; ++i) position += experts[base + i] < e;
      if (!ok) position = j;
      combine_slots[base + position] = ok ? rows[j] : -1;
      combine_weights[base + position] = weights[base + j];
    }
  }
}

__global__ void __launch_bounds__(kPlanThreads)
    plan_kernel(const std::int32_t* __restrict__ experts, const bf16* __restrict__ weights,
                std::int32_t* __restrict__ offsets, std::int32_t* __restrict__ gather_rows,
                std::int32_t* __restrict__ combine_slots, bf16* __restrict__ combine_weights, int n, int top_k,
                int num_experts) {
  pdl_wait();
  pdl_launch_dependents();
  plan_block(experts, weights, offsets, gather_rows, combine_slots, combine_slots, combine_weights, n, top_k,
             num_experts);
}

// Up to this many tokens moe_route_plan runs the one-CTA kernel below; larger calls the two kernels.
constexpr int kFusedRoutePlanMaxTokens = 64;
constexpr int kFusedMaxPairs = kFusedRoutePlanMaxTokens * kMaxPlanTopK;

// Decode-sized calls: route (a warp per token, 32 warps) and plan in one CTA, one launch less. The
// routing and the pairs' rows stay in shared memory (the plan reads them back several times: each
// trip through global memory is a round trip of latency at decode); the routing is copied out.
__global__ void __launch_bounds__(kPlanThreads)
    route_plan_kernel(const float* __restrict__ logits, std::int32_t* __restrict__ experts, bf16* __restrict__ weights,
                      bool norm_topk_prob, std::int32_t* __restrict__ offsets, std::int32_t* __restrict__ gather_rows,
                      std::int32_t* __restrict__ combine_slots, bf16* __restrict__ combine_weights, int n, int top_k,
                      int num_experts) {
  __shared__ std::int32_t experts_s[kFusedMaxPairs], rows_s[kFusedMaxPairs];
  __shared__ bf16 weights_s[kFusedMaxPairs];
  pdl_wait();
  pdl_launch_dependents();
  for (int t = threadIdx.x / 32; t < n; t += kPlanThreads / 32)
    route_token_warp(logits, experts_s, weights_s, t, num_experts, top_k, norm_topk_prob);
  __syncthreads();
  for (int p = threadIdx.x; p < n * top_k; p += kPlanThreads) experts[p] = experts_s[p], weights[p] = weights_s[p];
  plan_block(experts_s, weights_s, offsets, gather_rows, rows_s, combine_slots, combine_weights, n, top_k, num_experts);
}

// One token (decode at batch 1): route and plan on one warp, with plan_block's results. A 1024-thread
// CTA (route_plan_kernel) needs a whole SM's registers, so it cannot start while any other CTA
// is resident there (no early start under programmatic dependent launch), and it pays a block
// scan and five CTA barriers for 8 pairs. Lane j holds pair j (top_k <= 32): offsets[x] = valid
// pairs of an expert below x; pair j's row = offsets[e_j] + the earlier pairs of the same expert
// (plan_block's order for a repeated expert); the token's slots in increasing expert index, or -1
// slots in pair order when an expert is out of range or repeated.
__global__ void __launch_bounds__(32)
    route_plan_one_kernel(const float* __restrict__ logits, std::int32_t* __restrict__ experts,
                          bf16* __restrict__ weights, bool norm_topk_prob, std::int32_t* __restrict__ offsets,
                          std::int32_t* __restrict__ gather_rows, std::int32_t* __restrict__ combine_slots,
                          bf16* __restrict__ combine_weights, int top_k, int num_experts) {
  static_assert(kMaxPlanTopK <= 32, "a lane per pair");
  __shared__ std::int32_t experts_s[kMaxPlanTopK];
  __shared__ bf16 weights_s[kMaxPlanTopK];
  pdl_wait();
  pdl_launch_dependents();
  route_token_warp(logits, experts_s, weights_s, 0, num_experts, top_k, norm_topk_prob);
  __syncwarp();
  const int lane = threadIdx.x;
  auto valid = [&](int e) { return e >= 0 && e < num_experts; };
  auto valid_below = [&](int x) {  // valid pairs of an expert < x
    int count = 0;
    for (int i = 0; i < top_k; ++i) count += valid(experts_s[i]) && experts_s[i] < x;
    return count;
  };
  for (int x = lane; x <= num_experts; x += 32) offsets[x] = valid_below(x);
  const bool pair = lane < top_k;
  const int e = pair ? experts_s[lane] : 0;
  int earlier_same = 0, below = 0;
  for (int i = 0; i < top_k; ++i) {
    earlier_same += i < lane && experts_s[i] == e;
    below += experts_s[i] < e;
  }
  int row = -1;
  if (pair && valid(e)) {
    row = valid_below(e) + earlier_same;
    gather_rows[row] = 0;
  }
  const bool ok = __all_sync(0xffffffffu, !pair || (valid(e) && earlier_same == 0));
  if (!pair) return;
  experts[lane] = e;
  weights[lane] = weights_s[lane];
  const int position = ok ? below : lane;
  combine_slots[position] = ok ? row : -1;
  combine_weights[position] = weights_s[lane];
}

// Expert rows loaded before they are summed (in order): kCombineBatch 16-byte vectors in flight
// per thread instead of one round trip of memory latency per expert (decode: top_k = 8).
constexpr int kCombineBatch = 8;

// With norm_weight: then the next layer's input norm of the updated row (NormQuantizeRow, the code
// of rmsnorm_quantize; the CTA's 8 warps are its row warps).
__global__ void __launch_bounds__(kThreads)
    combine_kernel(bf16* x, const bf16* __restrict__ expert_out, const std::int32_t* __restrict__ slots,
                   const bf16* __restrict__ weights, int top_k, int hidden, int rows, const bf16* norm_weight,
                   std::uint32_t* q8, float* q8_scales, float eps) {
  static_assert(kThreads / 32 <= NormQuantizeRow<false>::kMaxRowWarps, "the norm's row warps");
  __shared__ int slot_s[kMaxPlanTopK];
  __shared__ float weight_s[kMaxPlanTopK];
  NormQuantizeRow<false> norm;
  if (norm_weight != nullptr) norm.preload(norm_weight, hidden);
  pdl_wait();
  pdl_launch_dependents();
  const int t = blockIdx.x, vectors = hidden / kVec;
  if (threadIdx.x < top_k) {
    const std::size_t at = static_cast<std::size_t>(t) * top_k + threadIdx.x;
    const std::int32_t slot = slots[at];
    slot_s[threadIdx.x] = slot < 0 || slot >= rows ? -1 : slot;
    weight_s[threadIdx.x] = __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(weights)[at]);
  }
  __syncthreads();
  uint4* xv = reinterpret_cast<uint4*>(x + static_cast<std::size_t>(t) * hidden);
  for (int v = threadIdx.x; v < vectors; v += kThreads) {
    const uint4 x_raw = xv[v];
    float sum[kVec] = {};
    for (int j0 = 0; j0 < top_k; j0 += kCombineBatch) {
      uint4 raw[kCombineBatch];
#pragma unroll
      for (int b = 0; b < kCombineBatch; ++b)
        if (j0 + b < top_k && slot_s[j0 + b] >= 0)
          raw[b] = reinterpret_cast<const uint4*>(expert_out + static_cast<std::size_t>(slot_s[j0 + b]) * hidden)[v];
#pragma unroll
      for (int b = 0; b < kCombineBatch; ++b) {
        if (j0 + b >= top_k) break;
        float out[kVec];
        if (slot_s[j0 + b] < 0) {
          for (int k = 0; k < kVec; ++k) out[k] = __uint_as_float(0x7fc00000u);  // a bad slot: NaN, not a wild read
        } else {
          vec::unpack8(raw[b], out);
        }
#pragma unroll
        for (int k = 0; k < kVec; ++k) sum[k] = math::combine_add(sum[k], out[k], weight_s[j0 + b], vec::round_bf16);
      }
    }
    float xs[kVec];
    vec::unpack8(x_raw, xs);
#pragma unroll
    for (int k = 0; k < kVec; ++k) xs[k] = __fadd_rn(xs[k], sum[k]);
    xv[v] = vec::pack8(xs);
  }
  if (norm_weight == nullptr) return;
  __syncthreads();  // the whole updated row is written (and visible to the CTA)
  norm.run(x + static_cast<std::size_t>(t) * hidden, nullptr, nullptr, q8 + static_cast<std::size_t>(t) * hidden / 4,
           q8_scales + static_cast<std::size_t>(t) * ceil_div(hidden, kQuantGroup), eps);
}

// OK when `value` is within the kernels' `limit`, else an error naming the op's argument.
Status at_most(int value, int limit, const char* what) {
  if (value <= limit) return Status::Ok();
  return Status::Error(std::string(what) + " = " + std::to_string(value) + " exceeds the kernel's " +
                       std::to_string(limit));
}

Status route_limits(const MoeRouteArgs& a) {
  FP8LM_RETURN_IF_ERROR(at_most(a.top_k, kMaxPlanTopK, "moe_route: top_k"));
  return at_most(a.num_experts, kMaxRouteExperts, "moe_route: num_experts");
}

Status plan_limits(const MoePlanArgs& a) {
  FP8LM_RETURN_IF_ERROR(at_most(a.num_experts, kMaxPlanExperts, "moe_plan: num_experts"));
  return at_most(a.top_k, kMaxPlanTopK, "moe_plan: top_k");
}

}  // namespace

Status moe_route(const MoeRouteArgs& a, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  if (a.n == 0) return Status::Ok();
  FP8LM_RETURN_IF_ERROR(route_limits(a));
  return cuda_status(launch_pdl(route_kernel, ceil_div(a.n, kRouteWarps), kRouteWarps * 32, 0, stream, a.logits,
                                a.experts, a.weights, a.n, a.num_experts, a.top_k, a.norm_topk_prob),
                     "moe_route launch");
}

Status moe_plan(const MoePlanArgs& a, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  if (a.n == 0) return Status::Ok();
  FP8LM_RETURN_IF_ERROR(plan_limits(a));
  return cuda_status(launch_pdl(plan_kernel, 1, kPlanThreads, 0, stream, a.experts, a.weights, a.offsets, a.gather_rows,
                                a.combine_slots, a.combine_weights, a.n, a.top_k, a.num_experts),
                     "moe_plan launch");
}

Status moe_route_plan(const MoeRouteArgs& route, const MoePlanArgs& plan, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(validate(route, plan));
  if (route.n == 0) return Status::Ok();
  if (route.n > kFusedRoutePlanMaxTokens) {
    FP8LM_RETURN_IF_ERROR(moe_route(route, stream));
    return moe_plan(plan, stream);
  }
  FP8LM_RETURN_IF_ERROR(route_limits(route));
  FP8LM_RETURN_IF_ERROR(plan_limits(plan));
  static const bool one_warp = knob_value(kMoeRouteWarpKnob) == 1;  // 0: the CTA kernel (A/B)
  if (route.n == 1 && one_warp)
    return cuda_status(launch_pdl(route_plan_one_kernel, 1, 32, 0, stream, route.logits, route.experts, route.weights,
                                  route.norm_topk_prob, plan.offsets, plan.gather_rows, plan.combine_slots,
                                  plan.combine_weights, plan.top_k, plan.num_experts),
                       "moe_route_plan launch");
  return cuda_status(launch_pdl(route_plan_kernel, 1, kPlanThreads, 0, stream, route.logits, route.experts,
                                route.weights, route.norm_topk_prob, plan.offsets, plan.gather_rows,
                                plan.combine_slots, plan.combine_weights, plan.n, plan.top_k, plan.num_experts),
                     "moe_route_plan launch");
}

Status moe_combine(const MoeCombineArgs& a, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  if (a.n == 0) return Status::Ok();
  if (a.hidden % kVec != 0)
    return Status::Error("moe_combine: hidden = " + std::to_string(a.hidden) + " must be a multiple of 8 (16-byte rows)");
  FP8LM_RETURN_IF_ERROR(at_most(a.top_k, kMaxPlanTopK, "moe_combine: top_k"));
  if (!vec::aligned16(a.x) || !vec::aligned16(a.expert_out))
    return Status::Error("moe_combine: x and expert_out must be 16-byte aligned");
  if (a.norm_weight != nullptr && (!vec::aligned16(a.norm_weight) || !vec::aligned16(a.q8) || !vec::aligned16(a.q8_scales)))
    return Status::Error("moe_combine: norm_weight, q8 and q8_scales must be 16-byte aligned");
  return cuda_status(launch_pdl(combine_kernel, a.n, kThreads, 0, stream, a.x, a.expert_out, a.slots, a.weights,
                                a.top_k, a.hidden, a.rows, a.norm_weight, reinterpret_cast<std::uint32_t*>(a.q8),
                                a.q8_scales, a.eps),
                     "moe_combine launch");
}

}  // namespace fp8lm
