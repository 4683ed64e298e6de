// What the two flash attention kernels share (flash_attention.cu: mma.sync, every call on sm_89
// and sm_90a; flash_sm90.cu: wgmma, prefill on sm_90a): the launch parameters and the per-thread
// arithmetic on a row block's scores and output, which both hold in the m16n8 accumulator layout
// (score fragment j, element c: row g + 8 (c / 2) of the thread's warp, key 8 j + 2 tig + c % 2;
// output fragment j, element c: the same rows, dims 8 j + 2 tig + c % 2; g = lane / 4, tig =
// lane % 4), so the masking, the online softmax, the P split and the epilogue are one code and
// the kernels differ only in how they load tiles and multiply. See flash_attention.cu for the
// scheme and PRECISION for the P split.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "attention/flash_attention.h"
#include "common/bf16_vec.cuh"
#include "common/fp8_convert.cuh"
#include "common/ptx.cuh"
#include "fp8lm/numerics.h"

namespace fp8lm::flash {

inline constexpr int kHeadDim = 128;
inline constexpr int kScoreFrags = kBlockN / 8;  // n8 fragments of a 16-row slice of S per key tile
inline constexpr int kOutFrags = kHeadDim / 8;   // n8 fragments of a 16-row slice of O
inline constexpr float kLog2e = 1.44269504088896341f;

struct Params {
  const bf16* qkv;
  const bf16* k_cache;
  const bf16* v_cache;
  const std::int32_t* block_table;
  int page_size;  // a multiple of kBlockN (attention() checks kKvPageMultiple)
  bf16* out;
  int n;
  int start_pos;
  const int* start_pos_ptr;  // when set, the position is read from device memory (CUDA graphs)
  float* partials;           // grid z > 1: [n, q_heads, splits, kPartialFloats]
  fp8_e4m3* q8;              // optional: out quantized, [n, q_heads * 128]
  float* q8_scales;          // [n, q_heads]
  int q_heads;
  int kv_heads;
  int group;         // q_heads / kv_heads
  float scale_log2;  // scale * log2(e)
  // AttentionArgs::rope (decode, n == 1; the mma.sync kernel): q_norm set = the kernel applies
  // qk_norm_rope to its q rows and writes the token's k and v into the caches it then reads.
  const bf16* q_norm = nullptr;
  const bf16* k_norm = nullptr;
  bf16* k_cache_out = nullptr;  // == k_cache, writable
  bf16* v_cache_out = nullptr;
  float norm_eps = 0.0f;
  float rope_theta = 0.0f;
  // P.V with P split into bf16 hi + lo (flash_attention.cu, PRECISION); false: P rounded to bf16,
  // half the P.V work. Only the wgmma kernel reads it (FP8LM_FLASH_P_SPLIT=0, an A/B knob).
  bool p_split = true;
};

inline constexpr int kChunksPerRow = kHeadDim * static_cast<int>(sizeof(bf16)) / 16;  // of a q, k or v row
inline constexpr int kDSteps = kHeadDim / 16;   // k16 steps of Q K^T
inline constexpr int kKeySteps = kBlockN / 16;  // k16 steps of P V over a key tile

// The launch parameters of a call, the fused qk_norm_rope's included when AttentionArgs::rope is
// set (the kernels' other extra fields keep their defaults).
inline Params make_params(const AttentionArgs& a, float* partials) {
  Params p{a.qkv,       a.k_cache,   a.v_cache,     a.block_table,      a.page_size, a.out,
           a.n,         a.start_pos, a.start_pos_ptr, partials,         a.q8,        a.q8_scales,
           a.q_heads,   a.kv_heads,  a.q_heads / a.kv_heads, a.scale * kLog2e};
  if (a.rope != nullptr) {
    p.q_norm = a.rope->q_norm, p.k_norm = a.rope->k_norm;
    p.k_cache_out = a.rope->k_cache, p.v_cache_out = a.rope->v_cache;
    p.norm_eps = a.rope->eps, p.rope_theta = a.rope->rope_theta;
  }
  return p;
}

// The CTA's kRows stacked q rows from row0 (row r: query (row0 + r) / G, q head kv_head * G +
// (row0 + r) % G) into shared memory by cp.async, 16-byte chunk c of row r at tile + offset(r, c)
// (each kernel's own layout); rows past n * G are zero-filled.
template <int kRows, int kThreads, typename Offset>
__device__ __forceinline__ void load_q_rows(std::uint8_t* tile, const Params& p, int kv_head, int row0, Offset offset) {
  static_assert((kRows * kChunksPerRow) % kThreads == 0, "each thread copies the same number of chunks");
  const std::size_t qkv_row = static_cast<std::size_t>(p.q_heads + 2 * p.kv_heads) * kHeadDim;
  const int rows = p.n * p.group;
#pragma unroll
  for (int it = 0; it < kRows * kChunksPerRow / kThreads; ++it) {
    const int i = it * kThreads + threadIdx.x;
    const int r = i / kChunksPerRow, c = i % kChunksPerRow;
    const int row = row0 + r;
    const bool valid = row < rows;
    const int t = row / p.group, h = kv_head * p.group + row % p.group;
    const bf16* src = p.qkv + (valid ? t * qkv_row + static_cast<std::size_t>(h) * kHeadDim : 0) + c * 8;
    ptx::cp_async_16(tile + offset(r, c), src, valid);
  }
}

// Keys first_key .. first_key + kBlockN - 1 (first_key < key_end, a multiple of kBlockN: the tile
// lies in one page) of one kv head (its rows at head_base + cache row * row_stride) into a tile by
// cp.async, chunk c of key r at tile + offset(r, c); keys >= key_end are zero-filled (and not read).
template <int kThreads, typename Offset>
__device__ __forceinline__ void load_kv_rows(std::uint8_t* tile, const bf16* head_base, std::size_t row_stride,
                                             const Params& p, int first_key, int key_end, Offset offset) {
  static_assert((kBlockN * kChunksPerRow) % kThreads == 0, "each thread copies the same number of chunks");
  const std::size_t first_row = paged_row(p.block_table, p.page_size, first_key);
#pragma unroll
  for (int it = 0; it < kBlockN * kChunksPerRow / kThreads; ++it) {
    const int i = it * kThreads + threadIdx.x;
    const int r = i / kChunksPerRow, c = i % kChunksPerRow;
    const bool valid = first_key + r < key_end;
    const bf16* src = head_base + (valid ? (first_row + r) * row_stride : 0) + c * 8;
    ptx::cp_async_16(tile + offset(r, c), src, valid);
  }
}

// Scores of keys past a row's last visible key (key_limit[row]) -> -inf, on a tile that reaches
// past the row block's first query.
__device__ __forceinline__ void mask_scores(float (&s)[kScoreFrags][4], int tile, const int (&key_limit)[2], int tig) {
#pragma unroll
  for (int j = 0; j < kScoreFrags; ++j)
#pragma unroll
    for (int c = 0; c < 4; ++c)
      if (tile * kBlockN + 8 * j + 2 * tig + c % 2 > key_limit[c / 2]) s[j][c] = -INFINITY;
}

// One key tile of the online softmax in base 2 for the thread's two rows: m = running max of
// s * scale * log2(e), s <- p = exp2(s * c - m), O and l (this thread's partial sum) rescaled by
// exp2(m_old - m_new). The 4 lanes of a row group (xor 1, 2) share a row. kFrags score fragments
// of 8 keys: the key tile (kScoreFrags), or flash_decode.cu's 16-key warp tile (2).
template <int kFrags>
__device__ __forceinline__ void online_softmax(float (&s)[kFrags][4], float (&o)[kOutFrags][4], float (&m)[2],
                                               float (&l)[2], float scale_log2) {
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < kFrags; ++j) mx = fmaxf(mx, fmaxf(s[j][2 * i], s[j][2 * i + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(m[i], mx * scale_log2);
    // -inf only while the row has seen no key (a split's tiles past its query): base 0, so that
    // alpha and p are exp2(-inf) = 0 rather than exp2(NaN). Without a split never (tile 0).
    const float m_base = m_new == -INFINITY ? 0.0f : m_new;
    const float alpha = exp2f(m[i] - m_base);  // 0 on the row's first visible tile (m = -inf)
    m[i] = m_new;
    float sum = 0.0f;
#pragma unroll
    for (int j = 0; j < kFrags; ++j)
#pragma unroll
      for (int c = 2 * i; c < 2 * i + 2; ++c) {
        s[j][c] = exp2f(fmaf(s[j][c], scale_log2, -m_base));  // masked: exp2(-inf) = 0
        sum += s[j][c];
      }
    l[i] = l[i] * alpha + sum;
#pragma unroll
    for (int j = 0; j < kOutFrags; ++j) o[j][2 * i] *= alpha, o[j][2 * i + 1] *= alpha;
  }
}

// {P_hi, P_lo} of two probabilities as bf16x2 words (the lower key in the low half): P_hi =
// bf16(p), P_lo = bf16(p - P_hi); p - P_hi is exact in fp32, so P_hi + P_lo carries ~16 bits of p.
__device__ __forceinline__ void split_bf16x2(float p0, float p1, std::uint32_t& hi, std::uint32_t& lo) {
  hi = vec::pack_bf16x2(p0, p1);
  lo = vec::pack_bf16x2(p0 - vec::lo_bf16(hi), p1 - vec::hi_bf16(hi));
}

// The A fragments (m16k16: rows g, g + 8 x keys 2 tig.., 2 tig + 8..) of P_hi and P_lo for key
// step kk (keys 16 kk .. 16 kk + 15 of the tile): score fragments 2 kk and 2 kk + 1 re-packed.
template <int kFrags>
__device__ __forceinline__ void p_fragments(const float (&s)[kFrags][4], int kk, std::uint32_t (&hi)[4],
                                            std::uint32_t (&lo)[4]) {
  split_bf16x2(s[2 * kk][0], s[2 * kk][1], hi[0], lo[0]);
  split_bf16x2(s[2 * kk][2], s[2 * kk][3], hi[1], lo[1]);
  split_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1], hi[2], lo[2]);
  split_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3], hi[3], lo[3]);
}

// The epilogue for the thread's rows thread_row and thread_row + 8 (of the kv head's stacked
// (query, head) rows; rows past n * G are not stored): out = O / l in bf16, or with a split the
// partial: O / l (0 for a row without keys here), the running max and the sum.
__device__ __forceinline__ void store_rows(const Params& p, const float (&o)[kOutFrags][4], float (&l)[2],
                                           const float (&m)[2], int thread_row, int kv_head, int tig, int splits,
                                           int split) {
  const int rows = p.n * p.group;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
    const int row = thread_row + 8 * i;
    if (row >= rows) continue;
    const int t = row / p.group, h = kv_head * p.group + row % p.group;
    if (splits == 1) {
      bf16* dst = p.out + (static_cast<std::size_t>(t) * p.q_heads + h) * kHeadDim;
#pragma unroll
      for (int j = 0; j < kOutFrags; ++j)
        *reinterpret_cast<std::uint32_t*>(dst + 8 * j + 2 * tig) =
            vec::pack_bf16x2(o[j][2 * i] / l[i], o[j][2 * i + 1] / l[i]);
    } else {
      float* dst = p.partials + ((static_cast<std::size_t>(t) * p.q_heads + h) * splits + split) * kPartialFloats;
      const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
#pragma unroll
      for (int j = 0; j < kOutFrags; ++j)
        *reinterpret_cast<float2*>(dst + 8 * j + 2 * tig) = make_float2(o[j][2 * i] * inv, o[j][2 * i + 1] * inv);
      if (tig == 0) dst[kHeadDim] = m[i], dst[kHeadDim + 1] = l[i];
    }
  }
}

// With q8 and no split: the rows just stored, quantized as quantize_per_token_group would, one
// 1x128 group per row (= head). Each lane reads back the bf16 pairs it stored (O is dead by then:
// no register pressure on the key loop); the 4 lanes of a row share the amax by shuffles, which
// every lane takes, rows past n * G included (as zeros). All 32 lanes must call it.
__device__ __forceinline__ void quantize_rows(const Params& p, int thread_row, int kv_head, int tig) {
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int row = thread_row + 8 * i;
    const bool valid = row < p.n * p.group;
    const std::size_t at = valid ? (static_cast<std::size_t>(row / p.group) * p.q_heads + kv_head * p.group +
                                    row % p.group) * kHeadDim + 2 * tig
                                 : 0;
    std::uint32_t pairs[kOutFrags];
    float amax = 0.0f;
#pragma unroll
    for (int j = 0; j < kOutFrags; ++j) {
      pairs[j] = valid ? *reinterpret_cast<const std::uint32_t*>(p.out + at + 8 * j) : 0u;
      amax = fmaxf(amax, fmaxf(fabsf(vec::lo_bf16(pairs[j])), fabsf(vec::hi_bf16(pairs[j]))));
    }
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2));
    const float scale = scale_from_amax(amax);
    if (!valid) continue;
#pragma unroll
    for (int j = 0; j < kOutFrags; ++j)  // IEEE division, as quantize_per_token_group
      *reinterpret_cast<std::uint16_t*>(p.q8 + at + 8 * j) =
          fp8x2_encode(__fdiv_rn(vec::lo_bf16(pairs[j]), scale), __fdiv_rn(vec::hi_bf16(pairs[j]), scale));
    if (tig == 0) p.q8_scales[at / kHeadDim] = scale;
  }
}

}  // namespace fp8lm::flash
