// Attention input preparation. Grid x = token; for a few tokens (decode) grid y spreads a token's
// heads over CTAs of kWarps warps, so one token uses several SMs; for many (prefill) one CTA per
// token walks all its heads, so the RoPE table is computed once per token. Each CTA computes the
// token's RoPE cos/sin (64 frequencies, double-precision transcendentals rounded to fp32, then
// bf16), then each warp takes heads in turn: q and k heads get the per-head RMSNorm (lane l owns
// elements 4l..4l+3; xor butterfly) and neox RoPE (element i pairs with i + 64, i.e. lane l with
// lane l ^ 16), written back in place (and k into the cache); v heads are copied into the cache, at
// the token's row of the paged cache (one block table lookup per CTA). The position comes from start_pos_ptr when set
// (read by every CTA when it runs: CUDA graph replays).
#include <cuda_runtime.h>

#include <string>

#include "attention/qk_norm_rope.cuh"
#include "common/bf16_vec.cuh"
#include "common/pdl.cuh"
#include "fp8lm/cuda_status.h"
#include "fp8lm/layer_math.h"
#include "fp8lm/layer_ops.h"

namespace fp8lm {

namespace {

using qk_rope::kHalf;
using qk_rope::kHeadDim;
constexpr int kWarps = 4;
// Up to this many tokens a token's heads are spread over CTAs (see the top of the file).
constexpr int kSpreadMaxTokens = 16;

__global__ void __launch_bounds__(kWarps * 32)
    qk_norm_rope_kernel(bf16* __restrict__ qkv, const bf16* __restrict__ q_norm, const bf16* __restrict__ k_norm,
                        bf16* __restrict__ k_cache, bf16* __restrict__ v_cache,
                        const std::int32_t* __restrict__ block_table, int page_size, int start_pos,
                        const int* __restrict__ start_pos_ptr, int q_heads, int kv_heads, float eps, float theta) {
  // Before pdl_wait, overlapping the previous kernel: the RoPE table (double-precision
  // transcendentals) and the norm weights. Neither depends on an earlier kernel: start_pos_ptr is
  // written by a host copy that precedes the step's first kernel (the decode graph's upload).
  __shared__ float cos_s[kHalf], sin_s[kHalf];
  const int t = blockIdx.x;
  const int pos = (start_pos_ptr != nullptr ? *start_pos_ptr : start_pos) + t;
  if (threadIdx.x < kHalf) qk_rope::table_entry(pos, threadIdx.x, theta, cos_s, sin_s);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const uint2 q_weights = __ldg(reinterpret_cast<const uint2*>(q_norm) + lane);
  const uint2 k_weights = __ldg(reinterpret_cast<const uint2*>(k_norm) + lane);
  pdl_wait();
  pdl_launch_dependents();
  __syncthreads();

  const std::size_t row = static_cast<std::size_t>(q_heads + 2 * kv_heads) * kHeadDim;
  const std::size_t cache_row = static_cast<std::size_t>(kv_heads) * kHeadDim;
  const std::size_t cache_at = paged_row(block_table, page_size, pos) * cache_row;
  bf16* token = qkv + t * row;
  for (int h = blockIdx.y * kWarps + warp; h < q_heads + 2 * kv_heads; h += gridDim.y * kWarps) {
    uint2* head = reinterpret_cast<uint2*>(token + static_cast<std::size_t>(h) * kHeadDim);
    if (h >= q_heads + kv_heads) {  // v: into the cache unchanged
      const int vh = h - q_heads - kv_heads;
      reinterpret_cast<uint2*>(v_cache + cache_at + static_cast<std::size_t>(vh) * kHeadDim)[lane] = head[lane];
      continue;
    }
    const uint2 packed = qk_rope::norm_rope(head[lane], h < q_heads ? q_weights : k_weights, cos_s, sin_s, eps, lane);
    head[lane] = packed;
    if (h >= q_heads)
      reinterpret_cast<uint2*>(k_cache + cache_at + static_cast<std::size_t>(h - q_heads) * kHeadDim)[lane] = packed;
  }
}

}  // namespace

Status qk_norm_rope(const QkNormRopeArgs& a, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  if (a.n == 0) return Status::Ok();
  if (a.head_dim != kHeadDim)
    return Status::Error("qk_norm_rope: head_dim = " + std::to_string(a.head_dim) +
                         " is not supported on the GPU (only 128, as in every Qwen3 model)");
  if (!vec::aligned16(a.qkv) || !vec::aligned16(a.q_norm) || !vec::aligned16(a.k_norm) ||
      !vec::aligned16(a.k_cache) || !vec::aligned16(a.v_cache))
    return Status::Error("qk_norm_rope: qkv, q_norm, k_norm, k_cache and v_cache must be 16-byte aligned");
  const dim3 grid(a.n, a.n <= kSpreadMaxTokens ? ceil_div(a.q_heads + 2 * a.kv_heads, kWarps) : 1);
  return cuda_status(
      launch_pdl(qk_norm_rope_kernel, grid, kWarps * 32, 0, stream, a.qkv, a.q_norm, a.k_norm, a.k_cache, a.v_cache,
                 a.block_table, a.page_size, a.start_pos, a.start_pos_ptr, a.q_heads, a.kv_heads, a.eps, a.rope_theta),
      "qk_norm_rope launch");
}

}  // namespace fp8lm
