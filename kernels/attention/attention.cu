// Causal GQA attention over the paged cache: attention() runs the tensor-core flash kernel
// (flash_attention.cu) for every call; when its CTAs (kv heads x blocks of 64 (query, q head)
// rows) would not fill one wave of the card (decode, small batches) and a workspace is given, the
// keys are split over more CTAs along grid z and the merge kernel below combines their partial
// softmax states. The split is a function of the keys of the call's last query and the launch's
// split count (grid z), computed on the device by both kernels (flash::plan_key_split), so that a
// launch recorded in a CUDA graph, with the position read from device memory and grid z sized for
// the longest context, splits exactly as a direct launch at that position: CTAs past the current
// split count exit, and when the keys need no split the flash CTA writes bf16 and the merge exits.
//
// History: decode and calls of fewer than 64 queries used to run on a CUDA-core split-K kernel
// (one lane per key, fp32 dot products; 119 registers at 8 q heads per kv head, so 2 CTAs per SM):
// on an H200 32B's ITL grew by 8.8 ms from input 1 to 30720 where its KV bytes take 1.9 ms
// (docs/engine.md, "Decode on the flash kernel", and the result file it names). The flash kernel
// reads each K/V tile once per CTA for the whole
// GQA group with mma.sync; for one query its 64-row block holds only G rows (the rest is padding
// on tensor cores, which have room to spare at decode).
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "attention/flash_attention.h"
#include "common/bf16_vec.cuh"
#include "common/knobs.h"
#include "common/pdl.cuh"
#include "common/quant_group.cuh"
#include "fp8lm/cuda_status.h"
#include "fp8lm/layer_ops.h"

namespace fp8lm {

namespace {

constexpr int kHeadDim = 128;
using flash::kPartialFloats;

// Merges the splits of one (token, q head): w_s = l_s 2^(m_s - M), out = sum_s w_s o_s / sum_s w_s,
// and with q8 quantizes the head's 128 outputs as quantize_per_token_group would (one group,
// quantize_group_warp on warp 0).
// max_splits is the flash launch's grid z, so plan_key_split agrees with it.
// Latency decides its time (a few KB per CTA): the splits' (m, l) come in with one load per
// thread and the weights are computed once into shared memory, then each thread loads its
// output element of kMergeBatch splits at a time before summing them in split order (one load
// after the other took 12 µs per layer for 33 splits on an H200: 32B at 30720).
constexpr int kMergeBatch = 8;

__global__ void __launch_bounds__(kHeadDim)
    attention_combine_kernel(const float* __restrict__ partials, bf16* __restrict__ out, int start_pos_arg,
                             const int* __restrict__ start_pos_ptr, int n, int q_heads, int max_splits,
                             fp8_e4m3* __restrict__ q8, float* __restrict__ q8_scales) {
  static_assert(kAttentionMaxSplits <= kHeadDim, "a thread per split stages the (m, l) pairs");
  __shared__ float m_s[kAttentionMaxSplits], w_s[kAttentionMaxSplits];
  pdl_wait();
  pdl_launch_dependents();
  const int h = blockIdx.x, t = blockIdx.y, d = threadIdx.x;
  const int start_pos = start_pos_ptr != nullptr ? *start_pos_ptr : start_pos_arg;
  const int splits = flash::plan_key_split(start_pos + n, max_splits).splits;
  if (splits == 1) return;  // the flash kernel wrote the output directly
  const float* p = partials + (static_cast<std::size_t>(t) * q_heads + h) * splits * kPartialFloats;
  float l = 0.0f;
  if (d < splits) {
    m_s[d] = p[d * kPartialFloats + kHeadDim];
    l = p[d * kPartialFloats + kHeadDim + 1];
  }
  __syncthreads();
  float mx = -INFINITY;
  for (int s = 0; s < splits; ++s) mx = fmaxf(mx, m_s[s]);
  // 0 for a split past this query's keys (l = 0): it adds nothing below, as a skipped term would.
  if (d < splits) w_s[d] = l == 0.0f ? 0.0f : l * exp2f(m_s[d] - mx);
  __syncthreads();
  float num = 0.0f, den = 0.0f;
  for (int s0 = 0; s0 < splits; s0 += kMergeBatch) {
    float o[kMergeBatch];
#pragma unroll
    for (int b = 0; b < kMergeBatch; ++b)
      if (s0 + b < splits) o[b] = p[(s0 + b) * kPartialFloats + d];
#pragma unroll
    for (int b = 0; b < kMergeBatch; ++b)
      if (s0 + b < splits && w_s[s0 + b] != 0.0f) {
        num += w_s[s0 + b] * o[b];
        den += w_s[s0 + b];
      }
  }
  const std::size_t at = (static_cast<std::size_t>(t) * q_heads + h) * kHeadDim + d;
  const __nv_bfloat16 value = __float2bfloat16_rn(num / den);
  reinterpret_cast<__nv_bfloat16*>(out)[at] = value;
  if (q8 == nullptr) return;
  // The head's 128 bf16 outputs are one 1x128 group: warp 0 quantizes them, lane l values 4l..4l+3.
  __shared__ float head_s[kHeadDim];
  head_s[d] = __bfloat162float(value);
  __syncthreads();
  if (d >= 32) return;
  const std::size_t head = static_cast<std::size_t>(t) * q_heads + h;
  quantize_group_from(head_s, q8 + head * kHeadDim, q8_scales + head, d);
}

// The split count to launch (grid z): enough CTAs for one wave of resident flash CTAs when kv
// heads x row blocks alone are fewer, no more than the workspace holds, and no more than
// plan_key_split gives the largest start_pos (start_pos itself, or its bound when the kernels read
// it from start_pos_ptr).
Status launch_splits(const AttentionArgs& a, int* splits) {
  *splits = 1;
  if (a.workspace == nullptr || a.workspace_bytes == 0) return Status::Ok();
  int wave = 0;
  FP8LM_RETURN_IF_ERROR(flash::flash_wave_ctas(&wave));
  const long long ctas = static_cast<long long>(a.kv_heads) * flash::flash_row_blocks(a.n, a.q_heads, a.kv_heads);
  const std::size_t per_split = static_cast<std::size_t>(a.n) * a.q_heads * kPartialFloats * sizeof(float);
  const long long max_splits = std::min<long long>(
      {kAttentionMaxSplits, static_cast<long long>(wave) / std::max(1LL, ctas), static_cast<long long>(a.workspace_bytes / per_split)});
  if (max_splits <= 1) return Status::Ok();
  *splits = flash::plan_key_split(a.start_pos + a.n, static_cast<int>(max_splits)).splits;
  return Status::Ok();
}

}  // namespace

Status attention(const AttentionArgs& a, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  if (a.n == 0) return Status::Ok();
  if (a.head_dim != kHeadDim)
    return Status::Error("attention: head_dim = " + std::to_string(a.head_dim) +
                         " is not supported on the GPU (only 128, as in every Qwen3 model)");
  if (a.n > 65535) return Status::Error("attention: n = " + std::to_string(a.n) + " exceeds 65535 tokens per call");
  if (!vec::aligned16(a.qkv) || !vec::aligned16(a.k_cache) || !vec::aligned16(a.v_cache) || !vec::aligned16(a.out))
    return Status::Error("attention: qkv, k_cache, v_cache and out must be 16-byte aligned");
  if (a.page_size % kKvPageMultiple != 0)
    return Status::Error("attention: page_size = " + std::to_string(a.page_size) + " must be a multiple of " +
                         std::to_string(kKvPageMultiple) + " on the GPU (the flash kernel's key tile)");
  if (a.rope != nullptr) {
    // The flash kernel applies rope itself when the fusion is on (FP8LM_DECODE_FUSION), its norm
    // weights are 16-byte aligned and one CTA per (kv head, split) owns the token's q heads (it
    // alone writes and reads the new cache row; every Qwen3 model has at most 16 per kv head).
    // Otherwise the op runs as qk_norm_rope, then plain attention: the same bits.
    const bool fused = decode_fusion_enabled(DecodeFusion::kRope) && vec::aligned16(a.rope->q_norm) &&
                       vec::aligned16(a.rope->k_norm) && a.q_heads / a.kv_heads <= flash::kBlockM;
    if (!fused) {
      FP8LM_RETURN_IF_ERROR(qk_norm_rope(*a.rope, stream));
      AttentionArgs plain = a;
      plain.rope = nullptr;
      return attention(plain, stream);
    }
  }
  int splits = 1;
  FP8LM_RETURN_IF_ERROR(launch_splits(a, &splits));
  FP8LM_RETURN_IF_ERROR(flash::attention(a, splits, stream));
  if (splits > 1) {
    FP8LM_RETURN_IF_ERROR(
        cuda_status(launch_pdl(attention_combine_kernel, dim3(a.q_heads, a.n), kHeadDim, 0, stream, a.workspace, a.out,
                               a.start_pos, a.start_pos_ptr, a.n, a.q_heads, splits, a.q8, a.q8_scales),
                    "attention combine launch"));
  }
  return Status::Ok();
}

}  // namespace fp8lm
