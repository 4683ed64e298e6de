// Causal GQA attention over the contiguous cache (the simple kernel; the attention issue replaces
// it with a flash/paged one).
//
// One CTA per (kv head, query token) serves the G = q_heads / kv_heads q heads that share the kv
// head, so each K/V row is read once per token for the whole group. Its 8 warps take 32-key chunks
// in turn (chunk c goes to warp c % 8) and keep an online softmax per q head in fp32:
//  - scores: lane l owns key chunk + l and computes its G dot products over 128 dims (q in shared
//    memory as fp32, K read as 16-byte vectors);
//  - P.V: lane l owns dims 4l..4l+3 and accumulates G x 4 outputs over the chunk's keys (the
//    chunk's probabilities go through shared memory).
// The 8 warps' states are merged at the end in a fixed order (deterministic), and the output is
// divided by the softmax denominator and rounded to bf16.
// NOTES: decode (n = 1) launches only kv_heads CTAs; at long contexts a split over keys would use
// the card better. That is the attention issue's business.
#include <cuda_runtime.h>

#include <cmath>
#include <string>

#include "common/bf16_vec.cuh"
#include "common/cuda_check.h"
#include "fp8lm/layer_ops.h"

namespace fp8lm {

namespace {

constexpr int kHeadDim = 128;
constexpr int kWarps = 8;
constexpr int kChunk = 32;  // keys per warp step: one per lane
constexpr float kLog2e = 1.44269504088896341f;

template <int G>
__global__ void __launch_bounds__(kWarps * 32)
    attention_kernel(const bf16* __restrict__ qkv, const bf16* __restrict__ k_cache, const bf16* __restrict__ v_cache,
                     bf16* __restrict__ out, int start_pos, int q_heads, int kv_heads, float scale_log2) {
  __shared__ __align__(16) float q_s[G][kHeadDim];
  __shared__ float p_s[kWarps][G][kChunk];
  __shared__ float o_s[G][kHeadDim];
  __shared__ float m_s[kWarps][G], l_s[kWarps][G];

  const int g = blockIdx.x, t = blockIdx.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int keys = start_pos + t + 1;
  const std::size_t qkv_row = static_cast<std::size_t>(q_heads + 2 * kv_heads) * kHeadDim;
  const std::size_t cache_row = static_cast<std::size_t>(kv_heads) * kHeadDim;
  const bf16* kbase = k_cache + static_cast<std::size_t>(g) * kHeadDim;
  const bf16* vbase = v_cache + static_cast<std::size_t>(g) * kHeadDim;

  {  // the group's q heads are contiguous: G * 128 bf16
    const bf16* q = qkv + t * qkv_row + static_cast<std::size_t>(g) * G * kHeadDim;
    for (int i = threadIdx.x; i < G * kHeadDim / 8; i += kWarps * 32) {
      float e[8];
      vec::unpack8(reinterpret_cast<const uint4*>(q)[i], e);
#pragma unroll
      for (int k = 0; k < 8; ++k) (&q_s[0][0])[i * 8 + k] = e[k];
    }
  }
  __syncthreads();

  float m[G], l[G], acc[G][4];  // m: running max (log2 units), l: this lane's share of the sum
#pragma unroll
  for (int h = 0; h < G; ++h) {
    m[h] = -INFINITY, l[h] = 0.0f;
#pragma unroll
    for (int d = 0; d < 4; ++d) acc[h][d] = 0.0f;
  }

  for (int chunk = warp * kChunk; chunk < keys; chunk += kWarps * kChunk) {
    const int j = chunk + lane;
    float s[G];
#pragma unroll
    for (int h = 0; h < G; ++h) s[h] = 0.0f;
    if (j < keys) {
      const uint4* krow = reinterpret_cast<const uint4*>(kbase + j * cache_row);
#pragma unroll 4
      for (int c = 0; c < kHeadDim / 8; ++c) {
        float kf[8];
        vec::unpack8(krow[c], kf);
#pragma unroll
        for (int h = 0; h < G; ++h) {
          const float4 q0 = *reinterpret_cast<const float4*>(&q_s[h][c * 8]);
          const float4 q1 = *reinterpret_cast<const float4*>(&q_s[h][c * 8 + 4]);
          s[h] += q0.x * kf[0] + q0.y * kf[1] + q0.z * kf[2] + q0.w * kf[3] + q1.x * kf[4] + q1.y * kf[5] +
                  q1.z * kf[6] + q1.w * kf[7];
        }
      }
    }
#pragma unroll
    for (int h = 0; h < G; ++h) {
      const float sh = j < keys ? s[h] * scale_log2 : -INFINITY;
      const float m_new = fmaxf(m[h], vec::warp_max(sh));  // finite: lane 0's key is always valid
      const float alpha = exp2f(m[h] - m_new);             // 0 on the first chunk (m = -inf)
      const float p = exp2f(sh - m_new);                   // 0 for masked keys
      l[h] = l[h] * alpha + p;
#pragma unroll
      for (int d = 0; d < 4; ++d) acc[h][d] *= alpha;
      m[h] = m_new;
      p_s[warp][h][lane] = p;
    }
    __syncwarp();
    const int chunk_keys = min(kChunk, keys - chunk);
    const bf16* vrow = vbase + static_cast<std::size_t>(chunk) * cache_row;
    for (int jj = 0; jj < chunk_keys; ++jj, vrow += cache_row) {
      float vf[4];
      vec::unpack4(reinterpret_cast<const uint2*>(vrow)[lane], vf);
#pragma unroll
      for (int h = 0; h < G; ++h) {
        const float p = p_s[warp][h][jj];
#pragma unroll
        for (int d = 0; d < 4; ++d) acc[h][d] += p * vf[d];
      }
    }
    __syncwarp();
  }

  // Merge the warps: M = max_w m_w, L = sum_w l_w 2^(m_w - M), out = sum_w acc_w 2^(m_w - M) / L.
#pragma unroll
  for (int h = 0; h < G; ++h) {
    l[h] = vec::warp_butterfly_sum(l[h]);
    if (lane == 0) m_s[warp][h] = m[h], l_s[warp][h] = l[h];
  }
  __syncthreads();
  float factor[G];
#pragma unroll
  for (int h = 0; h < G; ++h) {
    float mx = -INFINITY;
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, m_s[w][h]);
    float sum = 0.0f;
    for (int w = 0; w < kWarps; ++w) sum += m_s[w][h] == -INFINITY ? 0.0f : l_s[w][h] * exp2f(m_s[w][h] - mx);
    factor[h] = m[h] == -INFINITY ? 0.0f : exp2f(m[h] - mx) / sum;
  }
  for (int w = 0; w < kWarps; ++w) {
    if (warp == w) {
#pragma unroll
      for (int h = 0; h < G; ++h)
#pragma unroll
        for (int d = 0; d < 4; ++d) {
          float& o = o_s[h][lane * 4 + d];
          o = (w == 0 ? 0.0f : o) + acc[h][d] * factor[h];
        }
    }
    __syncthreads();
  }
  bf16* o = out + static_cast<std::size_t>(t) * q_heads * kHeadDim + static_cast<std::size_t>(g) * G * kHeadDim;
  for (int i = threadIdx.x; i < G * kHeadDim / 2; i += kWarps * 32)
    reinterpret_cast<std::uint32_t*>(o)[i] = vec::pack_bf16x2((&o_s[0][0])[2 * i], (&o_s[0][0])[2 * i + 1]);
}

template <int G>
void launch(const AttentionArgs& a, cudaStream_t stream) {
  const dim3 grid(a.kv_heads, a.n);
  attention_kernel<G><<<grid, kWarps * 32, 0, stream>>>(a.qkv, a.k_cache, a.v_cache, a.out, a.start_pos, a.q_heads,
                                                        a.kv_heads, a.scale * kLog2e);
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
  switch (a.q_heads / a.kv_heads) {
    case 1: launch<1>(a, stream); break;
    case 2: launch<2>(a, stream); break;
    case 3: launch<3>(a, stream); break;
    case 4: launch<4>(a, stream); break;
    case 5: launch<5>(a, stream); break;
    case 6: launch<6>(a, stream); break;
    case 7: launch<7>(a, stream); break;
    case 8: launch<8>(a, stream); break;
    case 16: launch<16>(a, stream); break;
    default:
      return Status::Error("attention: q_heads / kv_heads = " + std::to_string(a.q_heads / a.kv_heads) +
                           " is not supported on the GPU (1..8 or 16)");
  }
  return cuda_status(cudaGetLastError(), "attention launch");
}

}  // namespace fp8lm
