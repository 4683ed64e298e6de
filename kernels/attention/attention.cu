// Causal GQA attention over the paged cache: the split-K kernel below for decode and short
// calls, the tensor-core flash kernel (flash_prefill.cu) from flash::kPrefillMinTokens query tokens
// on (prefill, chunked prefill; flash_prefill.h says why that threshold).
//
// One CTA per (kv head, query token, key split) serves the G = q_heads / kv_heads q heads that
// share the kv head, so each K/V row is read once per token for the whole group. Its 8 warps take
// 32-key chunks of the split's key range in turn (chunk c goes to warp c % 8) and keep an online
// softmax per q head in fp32 (base-2 exponent: scores are pre-multiplied by log2(e)):
//  - scores: lane l owns key chunk + l, looks up its cache row in the block table and computes its
//    G dot products over 128 dims (q in shared memory as fp32, K read as 16-byte vectors);
//  - P.V: lane l owns dims 4l..4l+3 and accumulates G x 4 outputs over the chunk's 32 keys (the
//    probabilities go through shared memory, each key's cache row comes from the lane that looked
//    it up by a shuffle; rows past the range are clamped and get p = 0, so the loop has a fixed trip
//    count and its loads pipeline).
// The 8 warps' states are merged in a fixed order (deterministic). Without a split the CTA writes
// bf16 output; with splits (decode and small batches at long context, when a workspace is given)
// each CTA writes its normalized fp32 output, max and sum, and attention_combine_kernel merges the
// splits in order.
// The split is a function of the keys of the call's last query and the launch's split count (grid
// z), computed on the device by both kernels (plan_key_split), so that a launch recorded in a CUDA
// graph, with the position read from device memory and grid z sized for the longest context, splits
// exactly as a direct launch at that position: CTAs past the current split count exit, and when the
// keys need no split the first CTA writes bf16 and the combine kernel exits.
// Measured on an H100 (AttentionGpuLong in tests/gpu/layer_ops_gpu_test.cpp,
// bench/results/gpu-tests-2026-11-28-nvidia-h100-80gb-hbm3-before-flash.log), before prefill moved
// to the flash kernel: 4096-token prefill with 32/8 heads 20.8 ms; 512 tokens after 4000 5.5 ms; one
// token at position 40959 with 64/8 heads 2.4 ms without a workspace, 0.21 ms with key splits; on
// an H200 with one wave of splits: 2.6 ms and 0.17 ms (...-nvidia-h200-attention-splits.log).
// NOTES: this kernel does O(n^2) CUDA-core work with K re-read per token from L2, which is why many
// query tokens go to the flash kernel.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <string>

#include "attention/flash_prefill.h"
#include "common/bf16_vec.cuh"
#include "common/pdl.cuh"
#include "fp8lm/cuda_status.h"
#include "fp8lm/layer_ops.h"

namespace fp8lm {

namespace {

constexpr int kHeadDim = 128;
constexpr int kWarps = 8;
constexpr int kChunk = 32;  // keys per warp step: one per lane
constexpr float kLog2e = 1.44269504088896341f;
// A split is worth its merge only with at least this many keys.
constexpr int kMinKeysPerSplit = 256;
constexpr int kPartialFloats = kHeadDim + 2;  // output row, max, sum

struct KeySplit {
  int splits;          // 1: no split, bf16 output written directly
  int keys_per_split;  // key range of split s: [s * keys_per_split, (s + 1) * keys_per_split)
};

// At most max_splits splits of at least kMinKeysPerSplit keys each, for a call whose last query
// sees max_keys keys. The split count grows with max_keys, so a launch of max_splits CTAs along z
// sized for a longer context covers every shorter one.
__host__ __device__ __forceinline__ KeySplit plan_key_split(int max_keys, int max_splits) {
  const int by_keys = max_keys / kMinKeysPerSplit;
  const int splits = by_keys < max_splits ? by_keys : max_splits;
  if (splits <= 1) return {1, max_keys};
  const int per_split = ceil_div(max_keys, splits);
  return {ceil_div(max_keys, per_split), per_split};
}

__device__ __forceinline__ int read_start_pos(int start_pos, const int* start_pos_ptr) {
  return start_pos_ptr != nullptr ? *start_pos_ptr : start_pos;
}

template <int G>
__global__ void __launch_bounds__(kWarps * 32)
    attention_kernel(const bf16* __restrict__ qkv, const bf16* __restrict__ k_cache, const bf16* __restrict__ v_cache,
                     const std::int32_t* __restrict__ block_table, int page_size, bf16* __restrict__ out,
                     int start_pos_arg, const int* __restrict__ start_pos_ptr, int q_heads, int kv_heads,
                     float scale_log2, float* __restrict__ partials) {
  pdl_wait();
  pdl_launch_dependents();
  __shared__ __align__(16) float q_s[G][kHeadDim];
  __shared__ float p_s[kWarps][G][kChunk];
  __shared__ float o_s[G][kHeadDim];
  __shared__ float m_s[kWarps][G], l_s[kWarps][G];

  const int g = blockIdx.x, t = blockIdx.y, s_id = blockIdx.z;
  const int start_pos = read_start_pos(start_pos_arg, start_pos_ptr);
  const KeySplit split = plan_key_split(start_pos + static_cast<int>(gridDim.y), static_cast<int>(gridDim.z));
  if (s_id >= split.splits) return;  // launched for a longer context than the current one
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int keys = start_pos + t + 1;
  const int k_begin = s_id * split.keys_per_split;
  const int k_end = split.splits == 1 ? keys : min(keys, k_begin + split.keys_per_split);
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

  const int last = k_end - 1;
  for (int chunk = k_begin + warp * kChunk; chunk < k_end; chunk += kWarps * kChunk) {
    const int j = chunk + lane;
    // The lane's key clamped into the range (p = 0 past it), as an element offset in the pools.
    const std::size_t j_at = paged_row(block_table, page_size, min(j, last)) * cache_row;
    float s[G];
#pragma unroll
    for (int h = 0; h < G; ++h) s[h] = 0.0f;
    if (j < k_end) {
      const uint4* krow = reinterpret_cast<const uint4*>(kbase + j_at);
#pragma unroll 8
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
      const float sh = j < k_end ? s[h] * scale_log2 : -INFINITY;
      const float m_new = fmaxf(m[h], vec::warp_max(sh));  // finite: lane 0's key is always in range
      const float alpha = exp2f(m[h] - m_new);             // 0 on the first chunk (m = -inf)
      const float p = exp2f(sh - m_new);                   // 0 for keys out of range
      l[h] = l[h] * alpha + p;
#pragma unroll
      for (int d = 0; d < 4; ++d) acc[h][d] *= alpha;
      m[h] = m_new;
      p_s[warp][h][lane] = p;
    }
    __syncwarp();
#pragma unroll 8
    for (int jj = 0; jj < kChunk; ++jj) {
      // Key chunk + jj (clamped: p = 0 past the range), looked up by lane jj.
      const std::size_t row_at = __shfl_sync(0xffffffffu, j_at, jj);
      float vf[4];
      vec::unpack4(reinterpret_cast<const uint2*>(vbase + row_at)[lane], vf);
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
  // A warp (or a whole split) without keys has m = -inf, l = 0 and contributes nothing.
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
  if (split.splits == 1) {
    bf16* o = out + static_cast<std::size_t>(t) * q_heads * kHeadDim + static_cast<std::size_t>(g) * G * kHeadDim;
    for (int i = threadIdx.x; i < G * kHeadDim / 2; i += kWarps * 32)
      reinterpret_cast<std::uint32_t*>(o)[i] = vec::pack_bf16x2((&o_s[0][0])[2 * i], (&o_s[0][0])[2 * i + 1]);
    return;
  }
  for (int i = threadIdx.x; i < G * kPartialFloats; i += kWarps * 32) {
    const int h = i / kPartialFloats, c = i % kPartialFloats;
    float v;
    if (c < kHeadDim) {
      v = o_s[h][c];
    } else {  // the CTA's max and sum, as the merge above computed them
      float mx = -INFINITY, sum = 0.0f;
      for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, m_s[w][h]);
      for (int w = 0; w < kWarps; ++w) sum += m_s[w][h] == -INFINITY ? 0.0f : l_s[w][h] * exp2f(m_s[w][h] - mx);
      v = c == kHeadDim ? mx : sum;
    }
    const std::size_t slot = (static_cast<std::size_t>(t) * q_heads + g * G + h) * split.splits + s_id;
    partials[slot * kPartialFloats + c] = v;
  }
}

// Merges the splits of one (token, q head): w_s = l_s 2^(m_s - M), out = sum_s w_s o_s / sum_s w_s.
// max_splits and n are the attention launch's grid z and y, so plan_key_split agrees with it.
__global__ void __launch_bounds__(kHeadDim)
    attention_combine_kernel(const float* __restrict__ partials, bf16* __restrict__ out, int start_pos_arg,
                             const int* __restrict__ start_pos_ptr, int n, int q_heads, int max_splits) {
  pdl_wait();
  pdl_launch_dependents();
  const int h = blockIdx.x, t = blockIdx.y, d = threadIdx.x;
  const int splits = plan_key_split(read_start_pos(start_pos_arg, start_pos_ptr) + n, max_splits).splits;
  if (splits == 1) return;  // the attention kernel wrote the output directly
  const float* p = partials + (static_cast<std::size_t>(t) * q_heads + h) * splits * kPartialFloats;
  float mx = -INFINITY;
  for (int s = 0; s < splits; ++s) mx = fmaxf(mx, p[s * kPartialFloats + kHeadDim]);
  float num = 0.0f, den = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float l = p[s * kPartialFloats + kHeadDim + 1];
    if (l == 0.0f) continue;  // a split past this query's keys
    const float w = l * exp2f(p[s * kPartialFloats + kHeadDim] - mx);
    num += w * p[s * kPartialFloats + d];
    den += w;
  }
  reinterpret_cast<__nv_bfloat16*>(out)[(static_cast<std::size_t>(t) * q_heads + h) * kHeadDim + d] =
      __float2bfloat16_rn(num / den);
}

// How many key splits to launch: enough CTAs for one wave of resident CTAs (ctas_per_sm on every
// SM) when n * kv_heads alone is fewer, no more than the workspace holds, and no more than
// plan_key_split gives the largest start_pos (start_pos itself, or its bound when the kernels read
// it from start_pos_ptr). The kernel's registers limit residency (G = 8: 2 CTAs per SM), so a
// fixed split count left most of the card idle when kv_heads is small (30B-A3B: 4).
Status launch_splits(const AttentionArgs& a, int ctas_per_sm, int* splits) {
  *splits = 1;
  if (a.workspace == nullptr || a.workspace_bytes == 0) return Status::Ok();
  int device = 0, sms = 0;
  FP8LM_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  FP8LM_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const long long ctas = static_cast<long long>(a.n) * a.kv_heads;
  const std::size_t per_split = static_cast<std::size_t>(a.n) * a.q_heads * kPartialFloats * sizeof(float);
  const long long wave = static_cast<long long>(std::max(ctas_per_sm, 1)) * sms;
  const long long max_splits = std::min<long long>(
      {kAttentionMaxSplits, wave / std::max(1LL, ctas), static_cast<long long>(a.workspace_bytes / per_split)});
  if (max_splits <= 1) return Status::Ok();
  *splits = plan_key_split(a.start_pos + a.n, static_cast<int>(max_splits)).splits;
  return Status::Ok();
}

// The split-K kernel for G q heads per kv head; *splits: the key splits launched (grid z).
template <int G>
Status launch(const AttentionArgs& a, cudaStream_t stream, int* splits) {
  static int ctas_per_sm = 0;  // per process (one device model assumed, as the GEMM launchers do)
  static std::once_flag once;
  std::call_once(once, [] {
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&ctas_per_sm, attention_kernel<G>, kWarps * 32, 0) != cudaSuccess)
      ctas_per_sm = 1;
  });
  FP8LM_RETURN_IF_ERROR(launch_splits(a, ctas_per_sm, splits));
  const dim3 grid(a.kv_heads, a.n, *splits);
  return cuda_status(launch_pdl(attention_kernel<G>, grid, kWarps * 32, 0, stream, a.qkv, a.k_cache, a.v_cache,
                                a.block_table, a.page_size, a.out, a.start_pos, a.start_pos_ptr, a.q_heads, a.kv_heads,
                                a.scale * kLog2e, a.workspace),
                     "attention launch");
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
                         std::to_string(kKvPageMultiple) + " on the GPU (the flash prefill kernel's key tile)");
  // The flash kernel reads start_pos by value; a position in device memory (the decode graph) is
  // only ever given for single-token calls, which stay here.
  if (a.n >= flash::kPrefillMinTokens && a.start_pos_ptr == nullptr) return flash::prefill_attention(a, stream);
  int splits = 1;
  switch (a.q_heads / a.kv_heads) {
    case 1: FP8LM_RETURN_IF_ERROR(launch<1>(a, stream, &splits)); break;
    case 2: FP8LM_RETURN_IF_ERROR(launch<2>(a, stream, &splits)); break;
    case 3: FP8LM_RETURN_IF_ERROR(launch<3>(a, stream, &splits)); break;
    case 4: FP8LM_RETURN_IF_ERROR(launch<4>(a, stream, &splits)); break;
    case 5: FP8LM_RETURN_IF_ERROR(launch<5>(a, stream, &splits)); break;
    case 6: FP8LM_RETURN_IF_ERROR(launch<6>(a, stream, &splits)); break;
    case 7: FP8LM_RETURN_IF_ERROR(launch<7>(a, stream, &splits)); break;
    case 8: FP8LM_RETURN_IF_ERROR(launch<8>(a, stream, &splits)); break;
    case 16: FP8LM_RETURN_IF_ERROR(launch<16>(a, stream, &splits)); break;
    default:
      return Status::Error("attention: q_heads / kv_heads = " + std::to_string(a.q_heads / a.kv_heads) +
                           " is not supported on the GPU (1..8 or 16)");
  }
  if (splits > 1) {
    FP8LM_RETURN_IF_ERROR(
        cuda_status(launch_pdl(attention_combine_kernel, dim3(a.q_heads, a.n), kHeadDim, 0, stream, a.workspace, a.out,
                               a.start_pos, a.start_pos_ptr, a.n, a.q_heads, splits),
                    "attention combine launch"));
  }
  return Status::Ok();
}

}  // namespace fp8lm
