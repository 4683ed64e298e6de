// Decode attention (one query token, n == 1) on tensor cores: flash::attention_decode
// (flash_attention.h), the AttentionArgs semantics of the flash kernel for that case, including
// the fused qk_norm_rope (AttentionArgs::rope) and the key split over grid z that attention.cu's
// merge kernel combines. Why a kernel of its own (the flash kernel handles n == 1 too, as one
// 64-row block of which only G = q_heads / kv_heads rows are real):
//  - The flash kernel's four warps own 16 rows each, so at G <= 16 one warp does all the work of
//    a key tile (S and P.V over 64 keys, one dependent chain) while three compute padding. Here
//    the four warps share the same 16 rows (G real) and split the keys instead: warp w takes the
//    16-key sub-tiles w, w + 4, ... of the CTA's keys, and the CTA merges the four warps' softmax
//    states at the end (shared memory).
//  - Its K/V loads wait for nothing: every cache row before the token's position was written by
//    an earlier step, so each warp issues its first sub-tiles before pdl_wait, while the previous
//    kernel (the qkv GEMM) still runs. Only the token's own q, k and v come after the wait; the
//    new k and v go into the cache (fused rope) and into the sub-tile that holds the position, in
//    place of the row the early load skipped (zero-filled).
//  - Each warp streams through its own ring of `depth` slots (3 on Hopper, 2 where shared memory
//    is short: sm_89), 16 keys x (K + V) = 8 KB per slot, with no CTA barrier inside the key loop.
// The arithmetic per 16-key sub-tile is the flash kernel's (flash_common.cuh: mma.sync bf16 with
// P split into bf16 hi + lo, online softmax in base 2), so the precision argument there holds; the
// order of the sums differs, so the bits may differ from the flash kernel's in the last place.
// tests/gpu/layer_ops_gpu_test.cpp compares it with the CPU twin (through attention() and
// directly). FP8LM_FLASH_DECODE=0 runs the flash kernel instead (A/B).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "attention/flash_attention.h"
#include "attention/flash_common.cuh"
#include "attention/qk_norm_rope.cuh"
#include "common/knobs.h"
#include "common/pdl.cuh"
#include "common/ptx.cuh"
#include "common/quant_group.cuh"
#include "fp8lm/cuda_status.h"

namespace fp8lm::flash {

namespace {

constexpr int kDecodeWarps = 4;
constexpr int kDecodeThreads = kDecodeWarps * 32;
constexpr int kSubKeys = 16;  // keys of a warp's sub-tile: one k16 step of P.V, two n8 score fragments
constexpr int kRowBytes = kHeadDim * static_cast<int>(sizeof(bf16));
constexpr int kSubBytes = kSubKeys * kRowBytes;  // K (or V) of a sub-tile: 4 KB
constexpr int kSlotBytes = 2 * kSubBytes;        // K then V
constexpr int kRows = 16;                        // the m16 fragment: G <= 16 q heads, the rest zeros
constexpr int kQBytes = kRows * kRowBytes;
constexpr int kMaxDepth = 3;
static_assert(kBlockN % kSubKeys == 0, "a split's keys start on a sub-tile (a 16-key sub-tile lies in one page)");
static_assert(kSubKeys * kChunksPerRow % 32 == 0, "each lane copies the same number of chunks of a sub-tile");

// Shared memory: the warps' rings, then the Q tile (16 rows), then the token's k and v rows.
constexpr std::size_t smem_bytes(int depth) {
  return static_cast<std::size_t>(kDecodeWarps) * depth * kSlotBytes + kQBytes + 2 * kRowBytes;
}
// The CTA merge reuses the rings: each warp's O (16 rows x 128 fp32) and (m, l) per row.
constexpr std::size_t kMergeBytes = static_cast<std::size_t>(kDecodeWarps) * kRows * (kHeadDim + 2) * sizeof(float);
static_assert(kMergeBytes + kRows * kHeadDim * sizeof(float) <= static_cast<std::size_t>(kDecodeWarps) * 2 * kSlotBytes,
              "the merge and the outputs fit in the rings");

// Chunk c of row r of a 256-byte-row tile (the flash kernel's swizzle: 8 rows at one logical chunk
// hit 8 distinct bank groups).
__device__ __forceinline__ int swizzle(int row, int chunk) { return row * kRowBytes + ((chunk ^ (row & 7)) << 4); }

__device__ __forceinline__ void cp_async_wait_ring(int depth) {
  if (depth == 3)
    ptx::cp_async_wait<1>();
  else
    ptx::cp_async_wait<0>();
}

__global__ void __launch_bounds__(kDecodeThreads, 2) flash_decode_kernel(const Params p, int depth) {
  extern __shared__ __align__(128) std::uint8_t smem[];
  __shared__ float rope_cos[qk_rope::kHalf], rope_sin[qk_rope::kHalf];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tig = lane % 4;
  const int kv_head = blockIdx.x, G = p.group;
  const int pos = p.start_pos_ptr != nullptr ? *p.start_pos_ptr : p.start_pos;  // written before the step
  const KeySplit split = plan_key_split(pos + 1, static_cast<int>(gridDim.z));
  const bool fused = p.q_norm != nullptr;
  if (static_cast<int>(blockIdx.z) >= split.splits) {  // launched for a longer context
    pdl_wait();
    pdl_launch_dependents();
    return;
  }
  const int key_begin = static_cast<int>(blockIdx.z) * split.tiles_per_split * kBlockN;
  const int key_end = min(pos + 1, key_begin + split.tiles_per_split * kBlockN);  // <= key_begin: no keys here
  const int subs = key_end > key_begin ? ceil_div(key_end - key_begin, kSubKeys) : 0;
  const int my_subs = subs > warp ? ceil_div(subs - warp, kDecodeWarps) : 0;
  const bool holds_pos = key_begin <= pos && pos < key_end;

  std::uint8_t* ring = smem + static_cast<std::size_t>(warp) * depth * kSlotBytes;
  std::uint8_t* q_tile = smem + static_cast<std::size_t>(kDecodeWarps) * depth * kSlotBytes;
  std::uint8_t* new_rows = q_tile + kQBytes;  // the token's k, then v (plain 256-byte rows)
  const std::size_t cache_row = static_cast<std::size_t>(p.kv_heads) * kHeadDim;
  const bf16* k_head = p.k_cache + static_cast<std::size_t>(kv_head) * kHeadDim;
  const bf16* v_head = p.v_cache + static_cast<std::size_t>(kv_head) * kHeadDim;

  // The warp's i-th sub-tile into slot i % depth: keys before the position only (the token's own
  // row and keys past the split are zero-filled), one cp.async group per sub-tile (empty past the
  // warp's last, so that group i is sub-tile i).
  auto issue = [&](int i) {
    if (i < my_subs) {
      const int first = key_begin + (warp + i * kDecodeWarps) * kSubKeys;
      std::uint8_t* slot = ring + (i % depth) * kSlotBytes;
      const std::size_t first_row = paged_row(p.block_table, p.page_size, first);
#pragma unroll
      for (int it = 0; it < kSubKeys * kChunksPerRow / 32; ++it) {
        const int chunk = it * 32 + lane, r = chunk / kChunksPerRow, c = chunk % kChunksPerRow;
        const bool valid = first + r < pos && first + r < key_end;
        const std::size_t at = (valid ? (first_row + r) * cache_row : 0) + c * 8;
        ptx::cp_async_16(slot + swizzle(r, c), k_head + at, valid);
        ptx::cp_async_16(slot + kSubBytes + swizzle(r, c), v_head + at, valid);
      }
    }
    ptx::cp_async_commit();
  };
  if (fused && threadIdx.x < qk_rope::kHalf)
    qk_rope::table_entry(pos, threadIdx.x, p.rope_theta, rope_cos, rope_sin);
  for (int i = 0; i < depth - 1; ++i) issue(i);

  pdl_wait();
  pdl_launch_dependents();
  // The group's q rows (after q_norm + RoPE when fused) into the Q tile, rows G..15 zero; lane l
  // holds elements 4l .. 4l + 3 (qk_norm_rope's layout): chunk l / 2, half l % 2.
  if (fused) __syncthreads();  // the RoPE table
  for (int r = warp; r < kRows; r += kDecodeWarps) {
    uint2 v = make_uint2(0u, 0u);
    if (r < G) {
      v = reinterpret_cast<const uint2*>(p.qkv + static_cast<std::size_t>(kv_head * G + r) * kHeadDim)[lane];
      if (fused)
        v = qk_rope::norm_rope(v, __ldg(reinterpret_cast<const uint2*>(p.q_norm) + lane), rope_cos, rope_sin,
                               p.norm_eps, lane);
    }
    *reinterpret_cast<uint2*>(q_tile + swizzle(r, lane / 2) + (lane % 2) * 8) = v;
  }
  // The token's k and v: computed and written to the cache here (fused), else written by
  // qk_norm_rope before this kernel; by the CTA whose keys include the position.
  if (holds_pos && warp < 2) {
    const std::size_t at = paged_row(p.block_table, p.page_size, pos) * cache_row + static_cast<std::size_t>(kv_head) * kHeadDim;
    uint2 v;
    if (fused) {
      const bf16* raw = p.qkv + static_cast<std::size_t>(p.q_heads + (warp == 0 ? 0 : p.kv_heads) + kv_head) * kHeadDim;
      v = reinterpret_cast<const uint2*>(raw)[lane];
      if (warp == 0)
        v = qk_rope::norm_rope(v, __ldg(reinterpret_cast<const uint2*>(p.k_norm) + lane), rope_cos, rope_sin,
                               p.norm_eps, lane);
      reinterpret_cast<uint2*>((warp == 0 ? p.k_cache_out : p.v_cache_out) + at)[lane] = v;
    } else {
      v = reinterpret_cast<const uint2*>((warp == 0 ? p.k_cache : p.v_cache) + at)[lane];
    }
    reinterpret_cast<uint2*>(new_rows + warp * kRowBytes)[lane] = v;
  }
  __syncthreads();

  // A fragments of Q (rows 0-15), d-step ks: lane l addresses row l % 16 at chunk 2 ks + l / 16.
  std::uint32_t qf[kDSteps][4];
#pragma unroll
  for (int ks = 0; ks < kDSteps; ++ks) ptx::ldmatrix_x4(qf[ks], q_tile + swizzle(lane % 16, 2 * ks + lane / 16));

  float o[kOutFrags][4];
#pragma unroll
  for (int j = 0; j < kOutFrags; ++j)
#pragma unroll
    for (int c = 0; c < 4; ++c) o[j][c] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

  for (int i = 0; i < my_subs; ++i) {
    cp_async_wait_ring(depth);  // sub-tile i has landed (this lane's copies)
    __syncwarp();               // every lane's copies; every lane is done with sub-tile i - 1's slot
    issue(i + depth - 1);       // into sub-tile i - 1's slot
    std::uint8_t* k_tile = ring + (i % depth) * kSlotBytes;
    std::uint8_t* v_tile = k_tile + kSubBytes;
    const int first = key_begin + (warp + i * kDecodeWarps) * kSubKeys;
    if (first <= pos && pos < first + kSubKeys) {  // the token's row: lanes 0-15 its k chunks, 16-31 its v
      const int half = lane / 16, c = lane % 16;
      *reinterpret_cast<uint4*>(k_tile + half * kSubBytes + swizzle(pos - first, c)) =
          reinterpret_cast<const uint4*>(new_rows + half * kRowBytes)[c];
      __syncwarp();
    }
    // S = Q K^T over the sub-tile's 16 keys (the flash kernel's fragment order with one key pair).
    float s[2][4] = {};
#pragma unroll
    for (int ks = 0; ks < kDSteps; ++ks) {
      std::uint32_t kf[4];
      ptx::ldmatrix_x4(kf, k_tile + swizzle((lane / 16) * 8 + lane % 8, 2 * ks + (lane / 8) % 2));
      ptx::mma_bf16_16816(s[0], qf[ks], kf[0], kf[1]);
      ptx::mma_bf16_16816(s[1], qf[ks], kf[2], kf[3]);
    }
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c)
        if (first + 8 * j + 2 * tig + c % 2 >= key_end) s[j][c] = -INFINITY;
    online_softmax(s, o, m, l, p.scale_log2);
    std::uint32_t p_hi[4], p_lo[4];
    p_fragments(s, 0, p_hi, p_lo);
#pragma unroll
    for (int dp = 0; dp < kOutFrags / 2; ++dp) {
      std::uint32_t vf[4];
      ptx::ldmatrix_x4_trans(vf, v_tile + swizzle(lane % 16, 2 * dp + lane / 16));
      ptx::mma_bf16_16816(o[2 * dp], p_hi, vf[0], vf[1]);
      ptx::mma_bf16_16816(o[2 * dp + 1], p_hi, vf[2], vf[3]);
      ptx::mma_bf16_16816(o[2 * dp], p_lo, vf[0], vf[1]);
      ptx::mma_bf16_16816(o[2 * dp + 1], p_lo, vf[2], vf[3]);
    }
  }
  ptx::cp_async_wait<0>();  // the empty groups past the warp's last sub-tile
  __syncthreads();          // every warp is done with its ring: the merge reuses it

  // The four warps' states per row r: M = max m_w, L = sum 2^(m_w - M) l_w, O = sum 2^(m_w - M) o_w.
  float* o_s = reinterpret_cast<float*>(smem);                   // [warp][row][128]
  float* ml_s = o_s + kDecodeWarps * kRows * kHeadDim;           // [warp][row][2]
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
    const int row = g + 8 * i;
    float* dst = o_s + (warp * kRows + row) * kHeadDim;
#pragma unroll
    for (int j = 0; j < kOutFrags; ++j)
      *reinterpret_cast<float2*>(dst + 8 * j + 2 * tig) = make_float2(o[j][2 * i], o[j][2 * i + 1]);
    if (tig == 0) ml_s[(warp * kRows + row) * 2] = m[i], ml_s[(warp * kRows + row) * 2 + 1] = l[i];
  }
  __syncthreads();
  float* out_s = reinterpret_cast<float*>(smem + kMergeBytes);  // [row][128]: the bf16 outputs (for q8)
  const int d = threadIdx.x;  // one output dim per thread
  for (int r = 0; r < G; ++r) {
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < kDecodeWarps; ++w) mx = fmaxf(mx, ml_s[(w * kRows + r) * 2]);
    float num = 0.0f, den = 0.0f;
    if (mx != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kDecodeWarps; ++w) {
        const float f = exp2f(ml_s[(w * kRows + r) * 2] - mx);  // 0 for a warp without keys (m = -inf)
        num = fmaf(f, o_s[(w * kRows + r) * kHeadDim + d], num);
        den = fmaf(f, ml_s[(w * kRows + r) * 2 + 1], den);
      }
    }
    const int h = kv_head * G + r;
    if (split.splits == 1) {
      const __nv_bfloat16 value = __float2bfloat16_rn(num / den);
      reinterpret_cast<__nv_bfloat16*>(p.out)[static_cast<std::size_t>(h) * kHeadDim + d] = value;
      out_s[r * kHeadDim + d] = __bfloat162float(value);
    } else {  // the split's partial, as store_rows writes it (a split without keys: l = 0)
      float* dst = p.partials + (static_cast<std::size_t>(h) * split.splits + blockIdx.z) * kPartialFloats;
      dst[d] = den > 0.0f ? num * (1.0f / den) : 0.0f;
      if (d == 0) dst[kHeadDim] = mx, dst[kHeadDim + 1] = den;
    }
  }
  if (split.splits != 1 || p.q8 == nullptr) return;
  // The o projection's input: each head's 128 bf16 outputs are one 1x128 group (warp per head,
  // lane l values 4l .. 4l + 3, as the merge kernel quantizes).
  __syncthreads();
  for (int r = warp; r < G; r += kDecodeWarps) {
    const int h = kv_head * G + r;
    quantize_group_from(out_s + r * kHeadDim, p.q8 + static_cast<std::size_t>(h) * kHeadDim, p.q8_scales + h, lane);
  }
}

// The kernel's static shared memory (the RoPE table, 1.5 KB in the cubin), with room to spare.
constexpr std::size_t kStaticSmemBound = 2048;

// The ring depth (3 where a CTA of it fits the per-block shared memory limit: sm_90's 227 KB, two
// CTAs per SM; else 2: sm_89's 99 KB) and the attribute, once per process (one device model
// assumed, as the other launchers do).
Status setup(int* depth) {
  static int chosen = 2;
  static cudaError_t error = cudaSuccess;
  static std::once_flag once;
  std::call_once(once, [] {
    int device = 0, optin = 0;
    error = cudaGetDevice(&device);
    if (error == cudaSuccess) error = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    if (error != cudaSuccess) return;
    chosen = static_cast<std::size_t>(optin) >= smem_bytes(kMaxDepth) + kStaticSmemBound ? kMaxDepth : 2;
    error = cudaFuncSetAttribute(flash_decode_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(smem_bytes(chosen)));
  });
  *depth = chosen;
  return cuda_status(error, "flash decode setup");
}

}  // namespace

bool use_decode_attention(const AttentionArgs& a) {
  static const bool enabled = knob_value(kFlashDecodeKnob) == 1;
  return enabled && a.n == 1 && a.q_heads / a.kv_heads <= kRows;
}

Status attention_decode(const AttentionArgs& a, int max_splits, cudaStream_t stream) {
  if (a.n != 1 || a.q_heads / a.kv_heads > kRows)
    return Status::Error("flash decode attention: one token and at most 16 q heads per kv head");
  if (max_splits > 1 && a.workspace == nullptr) return Status::Error("flash decode attention: key splits need the workspace");
  int depth = 2;
  FP8LM_RETURN_IF_ERROR(setup(&depth));
  const Params p = make_params(a, max_splits > 1 ? a.workspace : nullptr);
  const dim3 grid(a.kv_heads, 1, std::max(max_splits, 1));
  return cuda_status(launch_pdl(flash_decode_kernel, grid, kDecodeThreads, smem_bytes(depth), stream, p, depth),
                     "flash decode attention launch");
}

}  // namespace fp8lm::flash
