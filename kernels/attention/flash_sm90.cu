// Causal GQA attention for prefill on Hopper (sm_90a): flash_attention.cu's scheme (a CTA owns a
// block of the kv head's stacked (query, head) rows and walks its keys in tiles of kBlockN with an
// online softmax) with both products on wgmma instead of mma.sync. Semantics, masking, the P split
// (PRECISION in flash_attention.cu) and the epilogue are flash_common.cuh's, shared with the
// mma.sync kernel, which still serves sm_89, decode and short calls (flash::attention decides).
//
// CTA: 2 warpgroups x 64 rows = kBlockM = 128 rows; every thread also issues the cp.async copies.
// Per key tile, each warpgroup:
//   S[64 x 64] = Q K^T: 8 wgmma m64n64k16 (k = d), Q and K from shared memory (K-major);
//   mask (diagonal tiles), online softmax, P split into bf16 hi + lo, all in the accumulator
//   registers, whose m64nN layout is the m16n8 layout per warp (flash_common.cuh);
//   O[64 x 128] += P_hi V + P_lo V: 2 x 4 wgmma m64n128k16 (k = keys), P from registers (the
//   accumulator layout is the A-fragment layout for 16-bit types), V from shared memory read
//   MN-major (V is stored [key][d]: the transpose flag).
// S of the next tile is issued before the softmax of the current one (FA3's intra-warpgroup
// overlap: the tensor cores work while the CUDA cores exponentiate), which needs three K/V stages:
// tile t (P V), t + 1 (S), t + 2 (cp.async in flight). The two warpgroups share the tiles.
//
// Shared memory (1024-byte aligned): Q [128 rows] and three stages of K and V [64 keys], each a
// row-major tile of 128 bf16 per row stored as two halves (d 0-63, d 64-127) of 128-byte rows,
// 128B-swizzled: chunk c (16 bytes) of row r at r * 128 + ((c ^ (r % 8)) * 16) in its half. That
// is the canonical K-major layout of wgmma for Q and K (8-row groups 1024 bytes apart; a k16 step
// is +32 bytes inside the 128-byte row, the second half of d another half further) and the
// canonical MN-major layout for V (64 d of a key per 128-byte row, 8 keys per 1024-byte group, the
// second 64 d one half further: LBO). cp.async writes through the generic proxy, so each thread
// fences to the async proxy (fence.proxy.async) before the barrier that precedes the wgmmas.
// 32 KB + 3 x 32 KB = 128 KB: one CTA (8 warps) per SM.
//
// Work per CTA and key tile: 2 x 64 x 64 x 128 x (2 + 2 x 2) = 6.3 MFLOP of wgmma (the P split
// doubles P V; FP8LM_FLASH_P_SPLIT=0 drops P_lo, an A/B knob for that cost). Measured on an H200
// (AttentionFlashGpuLong.Prefill30kTimed, 30720 tokens, 32/8 heads): 25.0 ms, 310 TFLOP/s of
// attention FLOPs (~465 of tensor work with the split) against 36.1 ms for the mma.sync kernel
// (bench/results/gpu-tests-2026-11-28-nvidia-h200-flash-wgmma-pipelined-3e20486.log). The GPU
// tests run every prefill-sized case through it and, via flash::attention_mma, through the
// mma.sync kernel; FP8LM_FLASH_WGMMA=0 turns it off (A/B timing).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <mutex>

#include "attention/flash_attention.h"
#include "attention/flash_common.cuh"
#include "common/knobs.h"
#include "common/pdl.cuh"
#include "common/ptx.cuh"
#include "common/wgmma.cuh"
#include "fp8lm/cuda_status.h"
#include "fp8lm/device.h"

namespace fp8lm::flash {

// Named (not anonymous), as in sm90_blockwise.cu: the sm_89 pass compiles the kernel to an empty
// body and would warn about device-only helpers it never references.
namespace wgmma_impl {

inline constexpr int kWarpgroups = 2;
inline constexpr int kWgRows = 64;                          // rows per warpgroup (the wgmma M)
inline constexpr int kBlockM90 = kWarpgroups * kWgRows;     // rows per CTA
inline constexpr int kThreads90 = kWarpgroups * 128;
inline constexpr int kHalfRowBytes = 128;                   // 64 bf16 of d
inline constexpr int kQBytes = kBlockM90 * 2 * kHalfRowBytes;
inline constexpr int kKvBytes = kBlockN * 2 * kHalfRowBytes;
inline constexpr int kStages90 = 3;  // K/V tiles t (P V), t + 1 (S), t + 2 (loading)
inline constexpr int kSmemBytes90 = kQBytes + kStages90 * 2 * kKvBytes + sm90::kSwizzleAlign;

static_assert(kBlockN == 64, "S is one m64n64 wgmma per k16 step");
static_assert(kKvPageMultiple % kBlockN == 0, "a key tile must not straddle two KV pages (one table lookup per tile)");
static_assert((kBlockM90 * kChunksPerRow) % kThreads90 == 0 && (kBlockN * kChunksPerRow) % kThreads90 == 0,
              "each thread copies the same number of 16-byte chunks per tile");

// Byte offset of chunk c (0..15) of row r in a tile of `rows` rows (see the top of the file).
__device__ __forceinline__ int tile_offset(int rows, int r, int c) {
  return (c >> 3) * rows * kHalfRowBytes + r * kHalfRowBytes + (((c & 7) ^ (r & 7)) << 4);
}

// S (64 rows x 64 keys) {+}= Q K^T for one k16 step: A = Q and B = K from shared memory, both
// K-major (d contiguous). scale_d == 0 overwrites d.
__device__ __forceinline__ void wgmma_qk(float (&d)[kScoreFrags][4], uint64_t desc_q, uint64_t desc_k, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
      : "l"(desc_q), "l"(desc_k), "r"(scale_d));
#endif
}

// O (64 rows x 128 dims) += P V for one k16 step of keys: A = P from registers (the m16k16
// fragments of p_fragments, one per warp), B = V from shared memory, MN-major (V is stored
// [key][d], d contiguous: the transpose flag).
__device__ __forceinline__ void wgmma_pv(float (&d)[kOutFrags][4], const std::uint32_t (&a)[4], uint64_t desc_v) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, {%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]), "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]), "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_v), "r"(1));
#endif
}

}  // namespace wgmma_impl

namespace {

using namespace wgmma_impl;

__global__ void __launch_bounds__(kThreads90, 1) flash_sm90_kernel(const Params p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ std::uint8_t smem_raw[];
  std::uint8_t* smem = sm90::swizzle_aligned(smem_raw);
  std::uint8_t* const q_tile = smem;
  const auto k_tile = [&](int stage) { return smem + kQBytes + stage * 2 * kKvBytes; };
  const auto v_tile = [&](int stage) { return smem + kQBytes + stage * 2 * kKvBytes + kKvBytes; };
  pdl_wait();
  pdl_launch_dependents();

  const int start_pos = p.start_pos_ptr != nullptr ? *p.start_pos_ptr : p.start_pos;
  const int kv_head = blockIdx.x;
  const int block = gridDim.y - 1 - blockIdx.y;  // longest first
  const int wg = threadIdx.x / 128, warp = (threadIdx.x % 128) / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, tig = lane % 4;

  const int rows = p.n * p.group;
  const int row0 = block * kBlockM90;
  const int t_first = row0 / p.group;
  const int t_last = (min(row0 + kBlockM90, rows) - 1) / p.group;
  const int key_end = start_pos + t_last + 1;                      // keys of the CTA's last query
  const int tiles = (key_end + kBlockN - 1) / kBlockN;
  const int unmasked_tiles = (start_pos + t_first + 1) / kBlockN;  // every row sees every key of these
  // The thread's two accumulator rows: thread_row and thread_row + 8. Rows past n * G get a limit
  // past key_end: they see zero-filled keys and are never stored.
  const int thread_row = row0 + wg * kWgRows + warp * 16 + g;
  int key_limit[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) key_limit[i] = start_pos + (thread_row + 8 * i) / p.group;

  load_q_rows<kBlockM90, kThreads90>(q_tile, p, kv_head, row0,
                                     [](int r, int c) { return tile_offset(kBlockM90, r, c); });
  ptx::cp_async_commit();

  // K and V tile of keys first_key .. + kBlockN - 1 (one page); keys >= key_end zero-filled.
  const std::size_t cache_row = static_cast<std::size_t>(p.kv_heads) * kHeadDim;
  const auto load_kv = [&](int stage, int first_key) {
    const auto offset = [](int r, int c) { return tile_offset(kBlockN, r, c); };
    const std::size_t head = static_cast<std::size_t>(kv_head) * kHeadDim;
    load_kv_rows<kThreads90>(k_tile(stage), p.k_cache + head, cache_row, p, first_key, key_end, offset);
    load_kv_rows<kThreads90>(v_tile(stage), p.v_cache + head, cache_row, p, first_key, key_end, offset);
    ptx::cp_async_commit();
  };
  load_kv(0, 0);
  if (tiles > 1) load_kv(1, kBlockN);

  float o[kOutFrags][4];
#pragma unroll
  for (int j = 0; j < kOutFrags; ++j)
#pragma unroll
    for (int c = 0; c < 4; ++c) o[j][c] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY};
  float l[2] = {0.0f, 0.0f};
  std::uint8_t* const q_rows = q_tile + wg * kWgRows * kHalfRowBytes;  // this warpgroup's 64 rows

  // S = Q K^T of the tile in `stage` over d in 8 k16 steps: step kk is d 16 kk.., in half kk / 4
  // at byte 32 (kk % 4). Issued and committed, not waited for.
  const auto issue_qk = [&](float (&s)[kScoreFrags][4], int stage) {
    sm90::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kDSteps; ++kk) {
      const int half = kk / 4, at = (kk % 4) * 32;
      wgmma_qk(s, sm90::sw128_desc(q_rows + half * kBlockM90 * kHalfRowBytes + at),
               sm90::sw128_desc(k_tile(stage) + half * kBlockN * kHalfRowBytes + at), kk > 0 ? 1 : 0);
    }
    sm90::wgmma_commit();
  };

  // Q and tile 0 have landed (tile 1 may still be in flight): S of tile 0.
  if (tiles > 1) {
    ptx::cp_async_wait<1>();
  } else {
    ptx::cp_async_wait<0>();
  }
  sm90::fence_proxy_async_smem();  // cp.async writes -> wgmma reads
  __syncthreads();
  float s[kScoreFrags][4], s_next[kScoreFrags][4];
  issue_qk(s, 0);
  sm90::wgmma_wait<0>();
  sm90::fence_regs(s);

  // Tile t: S(t) is in s. With a next tile, wait for it (the one cp.async group in flight), then
  // prefetch tile t + 2 into the stage of tile t - 1 (every warp is past iteration t - 1: the
  // barrier) and start S(t + 1) on the tensor cores, so that it runs during tile t's softmax.
  for (int tile = 0; tile < tiles; ++tile) {
    const int stage = tile % kStages90;
    const bool next = tile + 1 < tiles;
    if (next) {
      ptx::cp_async_wait<0>();
      sm90::fence_proxy_async_smem();
      __syncthreads();
      if (tile + 2 < tiles) load_kv((tile + 2) % kStages90, (tile + 2) * kBlockN);
      issue_qk(s_next, (tile + 1) % kStages90);
      sm90::fence_regs(s_next);  // the compiler must not touch s_next until the wait below
    }

    if (tile >= unmasked_tiles) mask_scores(s, tile, key_limit, tig);
    online_softmax(s, o, m, l, p.scale_log2);

    // O += P_hi V + P_lo V over the tile's keys in 4 k16 steps: step kk is keys 16 kk.., rows
    // 16 kk .. of the V tile (2048 bytes further per step; the second 64 d one half further).
    std::uint32_t p_hi[kKeySteps][4], p_lo[kKeySteps][4];
#pragma unroll
    for (int kk = 0; kk < kKeySteps; ++kk) p_fragments(s, kk, p_hi[kk], p_lo[kk]);
    sm90::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kKeySteps; ++kk) {
      const std::uint64_t desc_v = sm90::sw128_mn_desc(v_tile(stage) + kk * 16 * kHalfRowBytes, kBlockN * kHalfRowBytes);
      wgmma_pv(o, p_hi[kk], desc_v);
      if (p.p_split) wgmma_pv(o, p_lo[kk], desc_v);
    }
    sm90::wgmma_commit();
    sm90::wgmma_wait<0>();  // P V of this tile and S of the next
    sm90::fence_regs(o);
    if (next) {
      sm90::fence_regs(s_next);
#pragma unroll
      for (int j = 0; j < kScoreFrags; ++j)
#pragma unroll
        for (int c = 0; c < 4; ++c) s[j][c] = s_next[j][c];
    }
  }

  store_rows(p, o, l, m, thread_row, kv_head, tig, 1, 0);
  if (p.q8 != nullptr) quantize_rows(p, thread_row, kv_head, tig);
#endif  // __CUDA_ARCH_FEAT_SM90_ALL
}

Status setup90() {
  static cudaError_t error = cudaSuccess;
  static std::once_flag once;
  std::call_once(once, [] {
    error = cudaFuncSetAttribute(flash_sm90_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes90);
  });
  return cuda_status(error, "flash attention (sm90) setup");
}

}  // namespace

bool use_wgmma_attention(const AttentionArgs& a, int max_splits) {
  if (max_splits > 1 || a.rope != nullptr ||
      static_cast<long long>(a.n) * (a.q_heads / a.kv_heads) < kWgmmaAttentionMinRows)
    return false;
  // Read once (one device model per process, as the launchers' set-up assumes): current_device()
  // copies a DeviceInfo under a mutex, too much for every attention call.
  static const bool enabled = knob_value(kFlashWgmmaKnob) == 1 && [] {
    DeviceInfo device;
    return current_device(&device).ok() && device.sm_version() == 90;
  }();
  return enabled;
}

bool flash_p_split() {
  static const bool value = knob_value(kFlashPSplitKnob) == 1;
  return value;
}

Status attention_sm90(const AttentionArgs& a, cudaStream_t stream, bool p_split) {
  if (a.n == 0) return Status::Ok();
  FP8LM_RETURN_IF_ERROR(setup90());
  Params p = make_params(a, nullptr);
  p.p_split = p_split;
  const int rows = a.n * (a.q_heads / a.kv_heads);
  const dim3 grid(a.kv_heads, (rows + kBlockM90 - 1) / kBlockM90, 1);
  return cuda_status(launch_pdl(flash_sm90_kernel, grid, kThreads90, kSmemBytes90, stream, p),
                     "flash attention (sm90) launch");
}

}  // namespace fp8lm::flash
