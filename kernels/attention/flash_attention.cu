// Attention on tensor cores: FlashAttention-2's scheme (one CTA owns a block of query rows and
// walks the keys in tiles with an online softmax; nothing of size n^2 is stored) with
// mma.sync.m16n8k16 bf16 -> fp32 (SASS HMMA.16816.F32.BF16; sm_89 and sm_90a alike). On sm_90a,
// prefill-sized calls go to the wgmma version of the same scheme (flash_sm90.cu; the per-thread
// softmax and epilogue code of both is flash_common.cuh). Semantics: AttentionArgs (fp8lm/layer_ops.h), i.e. causal
// GQA over the paged cache, query t at position start_pos + t sees the sequence's cache rows
// 0 .. start_pos + t, so a chunk of a prompt attends to the already cached prefix. A key tile lies
// in one page (pages are whole tiles: kKvPageMultiple), so each tile load looks up the block table
// once and copies consecutive rows of the pool.
//
// Rows. The G = q_heads / kv_heads q heads that share a kv head are stacked as rows
// r = t * G + (h % G) of one matrix per kv head (n * G rows); a CTA owns kBlockM = 64 consecutive
// rows of one kv head (64 / G queries x G heads), so each K/V tile it loads serves the whole group,
// and short calls still fill the CTA's tile. Each of the 4 warps owns 16 rows (one m16 fragment);
// the row -> (query, head) division is done once per thread for its two accumulator rows.
// Grid: x = kv head, y = row block in reverse, so the blocks with the most keys (the last queries)
// start first and the short ones fill the tail (causal load balance), z = key split (decode and
// small batches, flash_attention.h: plan_key_split): a CTA of split s walks only the key tiles of
// its split (intersected with its rows' keys) and writes its rows' normalized output, running max
// and sum to the workspace, which attention.cu's merge kernel combines. A split whose keys some row
// cannot see (the last split, for the early queries of a batch) leaves that row's max at -inf
// until a visible key comes: the exponent base is then 0 instead of -inf (no inf - inf).
//
// Per key tile (kBlockN = 64 keys) each warp computes, all in registers:
//   S = Q K^T: 8 d-steps x 8 n8 fragments; Q fragments stay in registers for the whole CTA.
//   masking on the tiles that reach past the CTA's first query's last key only (diagonal tiles);
//   tiles past its last query's last key are never visited.
//   online softmax in base 2: m = running max of s * scale * log2(e), p = exp2(s * c - m),
//   O and l rescaled by exp2(m_old - m_new); l is a per-thread partial sum, reduced at the end.
//   O += P V: the S accumulators are re-packed as A fragments (the m16n8 C layout of two n8
//   score fragments is the m16k16 A layout), V fragments come from ldmatrix.trans.
// Tiles are visited in increasing key order; without a split the first tile holds key 0, which
// every row sees, so the running max is finite from then on and fully masked rows give p = 0.
//
// Shared memory: K and V tiles, 2 stages of cp.async double buffering (tile i + 1 loads while tile i
// is computed), rows of 128 bf16 = 256 bytes = 16 chunks of 16 B; chunk c of row r is stored at
// c ^ (r % 8), so the 8 rows an ldmatrix reads at one logical chunk hit 8 distinct bank groups.
// Keys past the CTA's last key are zero-filled (P.V would turn garbage, even multiplied by p = 0,
// into NaN). The Q tile goes through the K buffer of the stage the first key tile does not use,
// before the first prefetch overwrites it.
// 64 KB per CTA. __launch_bounds__(128, 2): ptxas gives 255 registers (sm_89 and sm_90a; 248 / 250
// before the block table lookup); with the key split no spills, with the two q8 pointers added to
// Params an 8-byte spill (8 stored, 4 loaded: not measured, watch Prefill30kTimed); 2 CTAs fit an
// H100/H200 SM and 1 an Ada SM (its 100 KB of shared memory); asking for 3 caps registers at 168.
//
// PRECISION. fp8lm is compared with a Hugging Face reference that computes attention in fp32, and
// the o projection re-quantizes the attention output to FP8, which turns last-bit differences
// into visible ones (docs/engine.md, "Agreement with transformers"). QK^T with bf16 q and k and
// fp32 accumulation is exact up to fp32 summation order. P in [0, 1] rounded to bf16 would carry
// only 8 significant bits (relative error up to 2^-9 per probability), so P is split:
// P_hi = bf16(P), P_lo = bf16(P - P_hi) (the difference is exact in fp32), and O += P_hi V + P_lo V
// gives P ~16 significant bits, below fp32 accumulation noise at the bf16 output. Cost: P.V is half
// of the FLOPs, so the mma work is 1.5x that of plain bf16 P. Measured on the wgmma kernel (H200,
// FP8LM_FLASH_P_SPLIT=0 against the default, one build): 30720 tokens 26.1 -> 22.1 ms without the
// split (bench/results/gpu-tests-2026-11-28-nvidia-h200-gpu-pending-fusions-9c32f43.log); the
// 30720-token prefill of 8B 1.56 -> 1.41 s, of 32B 5.92 -> 5.36 s
// (bench/results/one-batch-2026-11-28-nvidia-h200-qwen3-*-ab-p-split-*-9c32f43.md). Kept: the
// agreement with the reference was measured with the split.
//
// Work (the prediction the timing test checks): FLOPs = 2 (QK^T) x 2 (P.V) x 128 x q_heads x
// sum over queries of their keys (start_pos + t + 1); causal prefill: ~ 2 * n^2 * 128 * q_heads,
// 7.7e12 for 30720 tokens with 32 q heads, ~1.16e13 of mma work with the split. Predicted before
// it ran, at an assumed ~300 TFLOP/s of mma.sync: ~40 ms. Measured on an H100 (2026-11-28): 32.4 ms,
// 238 TFLOP/s (AttentionFlashGpuLong.Prefill30kTimed in
// bench/results/gpu-tests-2026-11-28-nvidia-h100-80gb-hbm3.log); tests/gpu/layer_ops_gpu_test.cpp
// (AttentionFlashGpu*) checks it against the CPU twin.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "attention/flash_attention.h"
#include "attention/flash_common.cuh"
#include "attention/qk_norm_rope.cuh"
#include "common/pdl.cuh"
#include "common/ptx.cuh"
#include "fp8lm/cuda_status.h"

namespace fp8lm::flash {

namespace {

constexpr int kThreads = kWarps * 32;
constexpr int kStages = 2;                         // cp.async double buffering
constexpr int kRowBytes = kHeadDim * static_cast<int>(sizeof(bf16));  // a row of K, V or Q
constexpr int kTileBytes = kBlockN * kRowBytes;    // one K or V tile
constexpr int kSmemBytes = kStages * 2 * kTileBytes;
constexpr int kMinCtasPerSm = 2;                   // 2 x 4 warps; 3 would spill (see above)

static_assert(kBlockM * kRowBytes <= kTileBytes, "the Q tile must fit in the K buffer it borrows");
static_assert(kChunksPerRow % 8 == 0, "the swizzle permutes chunks within groups of 8 (one bank sweep of 128 bytes)");
static_assert(kBlockN % 16 == 0 && kHeadDim % 16 == 0, "ldmatrix.x4 loads pairs of n8 fragments");
static_assert(kStages == 2, "the main loop's prefetch and wait counts are written for double buffering");
static_assert(kKvPageMultiple % kBlockN == 0, "a key tile must not straddle two KV pages (one table lookup per tile)");

__device__ __forceinline__ int swizzle(int row, int chunk) { return row * kRowBytes + ((chunk ^ (row & 7)) << 4); }

// A K or V tile of this kernel's layout (load_kv_rows).
__device__ __forceinline__ void load_kv_tile(std::uint8_t* tile, const bf16* head_base, std::size_t row_stride,
                                             const Params& p, int first_key, int key_end) {
  load_kv_rows<kThreads>(tile, head_base, row_stride, p, first_key, key_end, swizzle);
}

__global__ void __launch_bounds__(kThreads, kMinCtasPerSm) flash_attention_kernel(const Params p) {
  // Read again (not kept in registers across the key loop: the kernel is at its 255-register limit).
  auto position = [&p] { return p.start_pos_ptr != nullptr ? *p.start_pos_ptr : p.start_pos; };
  // Fused qk_norm_rope (decode): the RoPE table before pdl_wait, as qk_norm_rope computes it (the
  // position is written by a host copy before the step's first kernel).
  __shared__ float rope_cos[qk_rope::kHalf], rope_sin[qk_rope::kHalf];
  const bool fused_rope = p.q_norm != nullptr;
  if (fused_rope && threadIdx.x < qk_rope::kHalf)
    qk_rope::table_entry(position(), threadIdx.x, p.rope_theta, rope_cos, rope_sin);
  pdl_wait();
  pdl_launch_dependents();
  auto plan = [&] { return plan_key_split(position() + p.n, static_cast<int>(gridDim.z)); };
  const int start_pos = position();
  const KeySplit split = plan();
  if (static_cast<int>(blockIdx.z) >= split.splits) return;  // launched for a longer context
  extern __shared__ __align__(128) std::uint8_t smem[];
  const auto k_tile = [&](int stage) { return smem + stage * kTileBytes; };
  const auto v_tile = [&](int stage) { return smem + (kStages + stage) * kTileBytes; };

  const int kv_head = blockIdx.x;
  const int block = gridDim.y - 1 - blockIdx.y;  // longest first
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, tig = lane % 4;  // mma fragment coordinates: row group, thread in group

  const int rows = p.n * p.group;
  const int row0 = block * kBlockM;
  const int t_first = row0 / p.group;
  const int t_last = (min(row0 + kBlockM, rows) - 1) / p.group;
  const int key_end = start_pos + t_last + 1;                  // keys of the CTA's last query
  const int tile_begin = static_cast<int>(blockIdx.z) * split.tiles_per_split;
  const int tile_end = min(ceil_div(key_end, kBlockN), tile_begin + split.tiles_per_split);
  const int unmasked_tiles = (start_pos + t_first + 1) / kBlockN;  // every row sees every key of these

  // The last key that this thread's two accumulator rows (warp * 16 + g and + 8) may see. Rows
  // past n * G get a limit past key_end: they see zero-filled keys and are never stored.
  int key_limit[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) key_limit[i] = start_pos + (row0 + warp * kRowsPerWarp + g + 8 * i) / p.group;

  const std::size_t cache_row = static_cast<std::size_t>(p.kv_heads) * kHeadDim;
  const bf16* k_head = p.k_cache + static_cast<std::size_t>(kv_head) * kHeadDim;
  const bf16* v_head = p.v_cache + static_cast<std::size_t>(kv_head) * kHeadDim;

  float o[kOutFrags][4];
#pragma unroll
  for (int j = 0; j < kOutFrags; ++j)
#pragma unroll
    for (int c = 0; c < 4; ++c) o[j][c] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY};  // running max of the scaled scores (log2 units), rows g and g + 8
  float l[2] = {0.0f, 0.0f};            // this thread's share of the running sum of p

  if (fused_rope) {
    __syncthreads();  // the RoPE table
    // The token's k (normed, rotated) and v of this kv head into the caches, by the CTA whose keys
    // include its position (n == 1: start_pos; no other CTA of the launch reads that row), before
    // this CTA loads its tiles: the barrier orders the stores before the tile loads.
    const int pos_tile = start_pos / kBlockN;
    if (pos_tile >= tile_begin && pos_tile < tile_end) {
      const bf16* k_raw = p.qkv + static_cast<std::size_t>(p.q_heads + kv_head) * kHeadDim;
      const std::size_t at = paged_row(p.block_table, p.page_size, start_pos) * cache_row +
                             static_cast<std::size_t>(kv_head) * kHeadDim;
      if (warp == 0) {
        const uint2 w = __ldg(reinterpret_cast<const uint2*>(p.k_norm) + lane);
        reinterpret_cast<uint2*>(p.k_cache_out + at)[lane] =
            qk_rope::norm_rope(reinterpret_cast<const uint2*>(k_raw)[lane], w, rope_cos, rope_sin, p.norm_eps, lane);
      } else if (warp == 1) {
        reinterpret_cast<uint2*>(p.v_cache_out + at)[lane] =
            reinterpret_cast<const uint2*>(k_raw + static_cast<std::size_t>(p.kv_heads) * kHeadDim)[lane];
      }
      __syncthreads();
    }
  }

  if (tile_begin < tile_end) {  // else a split past all of this CTA's keys: an empty partial
    // Tile i lives in stage i % 2 (no loop-carried offset to keep in a register); Q goes through
    // the K buffer of the other stage, which the first prefetch fills afterwards.
    const int q_stage = (tile_begin % kStages) ^ 1;
    load_q_rows<kBlockM, kThreads>(k_tile(q_stage), p, kv_head, row0, swizzle);
    ptx::cp_async_commit();
    load_kv_tile(k_tile(q_stage ^ 1), k_head, cache_row, p, tile_begin * kBlockN, key_end);
    load_kv_tile(v_tile(q_stage ^ 1), v_head, cache_row, p, tile_begin * kBlockN, key_end);
    ptx::cp_async_commit();
    ptx::cp_async_wait<1>();  // Q has landed; the first tile may still be in flight
    __syncthreads();
    if (fused_rope) {  // q_norm + RoPE on the CTA's q rows, in shared memory (lane l: elements 4l..)
      const uint2 w = __ldg(reinterpret_cast<const uint2*>(p.q_norm) + lane);
      for (int r = warp; r < min(kBlockM, rows - row0); r += kWarps) {
        uint2* q = reinterpret_cast<uint2*>(k_tile(q_stage) + swizzle(r, lane / 2) + (lane % 2) * 8);
        *q = qk_rope::norm_rope(*q, w, rope_cos, rope_sin, p.norm_eps, lane);
      }
      __syncthreads();
    }

    // A fragments of the warp's 16 q rows, d-step ks: matrices (rows 0-7 | 8-15) x (d 0-7 | 8-15)
    // of the step; lane l addresses row l % 16 at chunk 2 ks + l / 16.
    std::uint32_t qf[kDSteps][4];
#pragma unroll
    for (int ks = 0; ks < kDSteps; ++ks)
      ptx::ldmatrix_x4(qf[ks], k_tile(q_stage) + swizzle(warp * kRowsPerWarp + lane % 16, 2 * ks + lane / 16));
    __syncthreads();  // the Q stage is free for the first prefetch

    for (int tile = tile_begin; tile < tile_end; ++tile) {
      const int stage = tile % kStages;
      if (tile + 1 < tile_end) {
        load_kv_tile(k_tile(stage ^ 1), k_head, cache_row, p, (tile + 1) * kBlockN, key_end);
        load_kv_tile(v_tile(stage ^ 1), v_head, cache_row, p, (tile + 1) * kBlockN, key_end);
        ptx::cp_async_commit();
        ptx::cp_async_wait<1>();  // everything but that prefetch: this tile has landed
      } else {
        ptx::cp_async_wait<0>();
      }
      __syncthreads();

      // S = Q K^T. B[d][key] = K[key][d]: plain ldmatrix of the key-major tile. One x4 covers keys
      // 16 np .. +15 at d-step ks: matrices (keys 0-7, d 0-7), (keys 0-7, d 8-15), (keys 8-15, d 0-7),
      // (keys 8-15, d 8-15) = {b0, b1} of fragment 2 np, then of 2 np + 1.
      float s[kScoreFrags][4];
#pragma unroll
      for (int j = 0; j < kScoreFrags; ++j)
#pragma unroll
        for (int c = 0; c < 4; ++c) s[j][c] = 0.0f;
#pragma unroll
      for (int ks = 0; ks < kDSteps; ++ks)
#pragma unroll
        for (int np = 0; np < kScoreFrags / 2; ++np) {
          std::uint32_t kf[4];
          ptx::ldmatrix_x4(kf, k_tile(stage) + swizzle(np * 16 + (lane / 16) * 8 + lane % 8, 2 * ks + (lane / 8) % 2));
          ptx::mma_bf16_16816(s[2 * np], qf[ks], kf[0], kf[1]);
          ptx::mma_bf16_16816(s[2 * np + 1], qf[ks], kf[2], kf[3]);
        }

      if (tile >= unmasked_tiles) mask_scores(s, tile, key_limit, tig);
      online_softmax(s, o, m, l, p.scale_log2);

      // O += P V, P split into P_hi + P_lo (see PRECISION above). A fragment of key step kk: score
      // fragments 2 kk (keys 0-7 of the step) and 2 kk + 1 (keys 8-15), rows g then g + 8.
      // B[key][d] = V[key][d]: ldmatrix.trans of the key-major tile; one x4 covers d 16 dp .. +15:
      // matrices (keys 0-7, d 0-7), (keys 8-15, d 0-7), (keys 0-7, d 8-15), (keys 8-15, d 8-15) =
      // {b0, b1} of output fragment 2 dp, then of 2 dp + 1; lane l addresses key l % 16, chunk 2 dp + l / 16.
#pragma unroll
      for (int kk = 0; kk < kKeySteps; ++kk) {
        std::uint32_t p_hi[4], p_lo[4];
        p_fragments(s, kk, p_hi, p_lo);
#pragma unroll
        for (int dp = 0; dp < kOutFrags / 2; ++dp) {
          std::uint32_t vf[4];
          ptx::ldmatrix_x4_trans(vf, v_tile(stage) + swizzle(kk * 16 + lane % 16, 2 * dp + lane / 16));
          ptx::mma_bf16_16816(o[2 * dp], p_hi, vf[0], vf[1]);
          ptx::mma_bf16_16816(o[2 * dp + 1], p_hi, vf[2], vf[3]);
          ptx::mma_bf16_16816(o[2 * dp], p_lo, vf[0], vf[1]);
          ptx::mma_bf16_16816(o[2 * dp + 1], p_lo, vf[2], vf[3]);
        }
      }
      __syncthreads();  // every warp is done with this stage before the next prefetch overwrites it
    }
  }  // tile_begin < tile_end

  const int splits = plan().splits;
  store_rows(p, o, l, m, row0 + warp * kRowsPerWarp + g, kv_head, tig, splits, blockIdx.z);
  if (p.q8 == nullptr || splits != 1) return;  // with a split the merge kernel quantizes
  // The thread's row recomputed from the launch (cheaper than keeping it live across the key loop).
  quantize_rows(p, (gridDim.y - 1 - blockIdx.y) * kBlockM + (threadIdx.x / 32) * kRowsPerWarp + (threadIdx.x % 32) / 4,
                blockIdx.x, threadIdx.x % 4);
}

// The kernel's shared memory limit is raised once per process (one device model assumed, as the
// GEMM launchers do); the occupancy and SM count for split planning are measured then too.
Status setup(int* wave_ctas) {
  static int wave = 0;
  static cudaError_t error = cudaSuccess;
  static std::once_flag once;
  std::call_once(once, [] {
    int device = 0, sms = 0, per_sm = 0;
    error = cudaFuncSetAttribute(flash_attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
    if (error == cudaSuccess)
      error = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, flash_attention_kernel, kThreads, kSmemBytes);
    if (error == cudaSuccess) error = cudaGetDevice(&device);
    if (error == cudaSuccess) error = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    wave = std::max(per_sm, 1) * sms;
  });
  if (wave_ctas != nullptr) *wave_ctas = wave;
  return cuda_status(error, "flash attention setup");
}

}  // namespace

Status flash_wave_ctas(int* ctas) { return setup(ctas); }

Status attention(const AttentionArgs& a, int max_splits, cudaStream_t stream) {
  if (use_decode_attention(a)) return attention_decode(a, max_splits, stream);
  if (use_wgmma_attention(a, max_splits)) return attention_sm90(a, stream, flash_p_split());
  return attention_mma(a, max_splits, stream);
}

Status attention_mma(const AttentionArgs& a, int max_splits, cudaStream_t stream) {
  if (a.n == 0) return Status::Ok();
  if (max_splits > 1 && a.workspace == nullptr)
    return Status::Error("flash attention: key splits need the workspace");
  FP8LM_RETURN_IF_ERROR(setup(nullptr));
  const Params p = make_params(a, max_splits > 1 ? a.workspace : nullptr);
  const dim3 grid(a.kv_heads, flash_row_blocks(a.n, a.q_heads, a.kv_heads), std::max(max_splits, 1));
  return cuda_status(launch_pdl(flash_attention_kernel, grid, kThreads, kSmemBytes, stream, p),
                     "flash attention launch");
}

}  // namespace fp8lm::flash
