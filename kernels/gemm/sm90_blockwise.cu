// Hopper (sm_90a) FP8 blockwise GEMM: TMA + wgmma.
//
//   out[m, n] = sum_kb  a_scale[m, kb] * b_scale[n/128, kb] * sum_{k in kb} A[m, k] * B[n, k]
//
// Two kernels, one file. Measurements behind every choice: kernels/gemm/NOTES-sm90.md.
//
// 1. sm90_gemm_kernel<BM, BN, STAGES, CM, PIPE> (GemmKernel::kSm90Wgmma), for large M.
//    - Persistent grid (one CTA per SM) walking output tiles BM x BN in a grouped order (kGroupM
//      m-blocks share each sweep over n, so the tiles of concurrently running CTAs share L2).
//    - Warp-specialized: warpgroup 0 is the producer (setmaxnreg down; one thread issues TMA),
//      warpgroups 1..BM/64 are consumers (setmaxnreg up), each owning 64 rows of the tile.
//    - BLOCK_K = 128 = the scale group = one 128-byte swizzle row of FP8, so a stage holds exactly
//      one k-block: A [BM x 128] and B [BN x 128], loaded by TMA with SWIZZLE_128B into a ring of
//      STAGES slots guarded by full (TMA transaction bytes) and empty (consumer warps done)
//      mbarriers.
//    - Per k-block a consumer issues 4 x wgmma m64nBNk32 (e4m3 x e4m3 -> f32) into a fresh partial
//      accumulator, waits, releases the slot, and promotes: acc += partial * a_scale[row] *
//      b_scale[block(col)] ("promote once per 128-k block", as the CPU twin). With PIPE (the
//      default for BN <= 128) two partial accumulators alternate, so k-block kb+1's wgmma runs
//      while kb is promoted (+5..8%).
//    - Scales are read with plain loads one k-block ahead (2 A rows per thread); no re-layout.
//    - BN need not divide 128 (192, experiment-only now): a tile may straddle two B-scale blocks,
//      and each 8-column group of the accumulator picks its block's scale.
//    - CM = 2 (experiment-only): 2-CTA clusters along m, each CTA loads half of the shared B tile
//      and TMA-multicasts it; consumers release the slot in both CTAs. As fast as CM = 1 except at
//      the largest shape, where it is slower, so not compiled into the production list.
//    - Epilogue: bf16 pairs stored straight from the accumulator registers, masked for ragged
//      m/n (TMA zero-fills out-of-bounds loads, so ragged m/n/k need nothing else).
//
// 2. sm90_decode_kernel<MT> (GemmKernel::kSm90Decode), for small M (decode).
//    - Swap-AB: the weights are the M=64 side of wgmma (64 rows of B per CTA), the tokens are the
//      wgmma N side (MT = 16/32/64 tokens), so no tensor-core work is wasted on padding rows.
//    - Split-K over a thread-block cluster of S CTAs (S <= 8): rank r handles a contiguous range
//      of k-blocks, then the S partial tiles are summed through distributed shared memory (each
//      rank reduces and stores a 1/S slice of the tile). No global workspace, no atomics, no
//      second launch, deterministic, graph-capturable. S: the largest power of two that keeps
//      about 3 CTAs per SM.
//    - One warpgroup; thread 0 keeps `stages` TMA loads in flight (the weight stream is the whole
//      cost at small M), the warpgroup syncs on a named barrier before a slot is refilled. The
//      ring depth is chosen at launch (4, or 2-3 when that makes the whole grid resident).
//
// 3. Grouped (MoE experts, GROUPED = true; include/fp8lm/grouped_gemm.h): both kernels above, with
//    their mainloops unchanged; only where a tile's rows, weights and scales lie changes.
//    - A is [total_rows, k] sorted by expert, B all experts stacked [num_experts * n, k] (one TMA
//      map each); expert e's rows are [offsets[e], offsets[e+1]), read from device memory.
//    - Large M: the persistent scheduler walks (expert, m-block, n-block) work items. Warp 0
//      scans the offsets once per CTA into shared memory (row ranges and the prefix sum of tile
//      counts); a tile index finds its expert by binary search. A tile's A box starts at the
//      expert's row and may run into the next expert's rows (or past total_rows, zero-filled):
//      those rows are computed with this expert's weights and never stored (epilogue mask).
//    - Decode (swap-AB): grid y = (slot of an expert with rows, token tile); a CTA finds the
//      slot-th expert with rows (a warpgroup-wide count over the offsets), so the grid covers
//      min(num_experts, total_rows) experts, not all of them; surplus CTAs exit at once.
//    - B tiles past an expert's n rows read the next expert's weights: masked like ragged n.
//    - Each expert's range is clamped into [0, total_rows]: offsets that break the contract
//      give wrong rows, never writes outside `out`.
//
// Numerics: Hopper FP8 wgmma adds the products of one instruction with ~14 significant bits, so
// the elementwise oracle bound for these kernels is 2^-10 of sum |a b| (oracle_check.h).
//
// Both kernels compile only for sm_90a (__CUDA_ARCH_FEAT_SM90_ALL); the sm_89 pass sees empty
// bodies and the launcher refuses devices that are not sm_90.
#include "gemm/sm90_blockwise.h"

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>

#include "fp8lm/cuda_status.h"
#include "common/knobs.h"
#include "common/pdl.cuh"
#include "common/ptx.cuh"
#include "common/wgmma.cuh"
#include "elementwise/silu_mul_quantize_group.cuh"
#include "gemm/grouped_slots.cuh"
#include "gemm/sm90_wgmma_ops.cuh"

namespace fp8lm::sm90 {
// Named (not anonymous) so the sm_89 pass, which compiles the kernels to empty bodies, does not
// warn about device-only helpers it never references.
namespace impl {

inline constexpr int kBlockK = 128;        // k per stage = per scale group = one 128B swizzle row of fp8
inline constexpr int kWgmmaK = 32;         // k per wgmma instruction for 8-bit inputs
inline constexpr int kWgmmaM = 64;         // rows per wgmma (one warpgroup)
inline constexpr int kWarpgroup = 128;     // threads
inline constexpr int kGroupM = 8;          // m-blocks per sweep of the persistent tile order
inline constexpr int kDecodeRows = 64;     // weight rows per decode CTA (the wgmma M)
inline constexpr int kMaxCluster = 8;      // portable cluster size limit
inline constexpr int kProducerRegs = 40;
inline constexpr int kConsumerRegs = 232;  // 2 consumer warpgroups: 2*128*232 + 128*40 <= 64K regs
inline constexpr int kSm90MaxSmemPerCta = 227 * 1024;  // opt-in dynamic shared memory limit of sm_90
inline constexpr long long kMaxGridY = 65535;          // grid y and z limit

// ------------------------------------------------------------------------------------------------
// Device helpers (PTX wrappers). Bodies exist only in the sm_90a pass.
// ------------------------------------------------------------------------------------------------
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
using ptx::smem_addr;
__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count));
}
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)),
               "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(bar)) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  const uint32_t addr = smem_addr(bar);
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        " selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(addr), "r"(parity)
        : "memory");
  } while (!done);
}
// 2D TMA load of box {128 bytes of k, rows} at (k0, row0) into `dst`, completing on `bar`.
__device__ __forceinline__ void tma_load(void* dst, const CUtensorMap* map, uint64_t* bar, int k0,
                                         int row0) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4}], [%2];" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(smem_addr(bar)), "r"(k0), "r"(row0)
      : "memory");
}
__device__ __forceinline__ void prefetch_map(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}
#endif  // __CUDA_ARCH_FEAT_SM90_ALL

// Accumulator layout of wgmma m64nN f32 (per thread of the warpgroup): element i of d[N/2] is
//   row = 16*warp + lane/4 + 8*((i/2)%2),  col = 8*(i/4) + 2*(lane%4) + i%2.
struct AccLayout {
  __device__ static int row(int warp, int lane, int i) { return 16 * warp + lane / 4 + 8 * ((i >> 1) & 1); }
  __device__ static int col(int lane, int i) { return 8 * (i >> 2) + 2 * (lane & 3) + (i & 1); }
};

// ------------------------------------------------------------------------------------------------
// Kernel 1: large M.
// ------------------------------------------------------------------------------------------------
template <int BM, int BN, int STAGES, int CM>
struct BigShape {
  static_assert(BM % kWgmmaM == 0 && BM / kWgmmaM >= 1 && BM / kWgmmaM <= 2,
                "BM is 64 or 128: one or two consumer warpgroups of 64 rows");
  static_assert(BN % 8 == 0 && BN <= 256, "wgmma N is a multiple of 8 up to 256");
  static_assert(BN <= 128 ? (128 % BN == 0) : (BN % 64 == 0),
                "a tile may straddle at most two 128-wide B-scale blocks");
  static_assert(CM == 1 || CM == 2, "cluster of 1 or 2 CTAs along m");
  static_assert((BN / CM) * kBlockK % kSwizzleAlign == 0, "each multicast slice of B keeps 1024-byte alignment");
  static constexpr int kConsumers = BM / kWgmmaM;
  static constexpr int kThreads = kWarpgroup * (kConsumers + 1);
  static constexpr int kABytes = BM * kBlockK;
  static constexpr int kBBytes = BN * kBlockK;
  static constexpr int kBSliceRows = BN / CM;  // rows of B each CTA of the cluster loads (multicast)
  static constexpr int kStageBytes = kABytes + kBBytes;
  static constexpr int kSmemBytes = STAGES * kStageBytes + 2 * STAGES * 8 + kSwizzleAlign;
  static constexpr bool kOneScaleBlock = BN <= 128;
};

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// Tile order: groups of kGroupM row-blocks (of CM m-blocks each) sweep all n-blocks, so the CTAs
// running at one time share a few A row-blocks and B column-blocks in L2.
__device__ __forceinline__ void tile_coords(int tile, int m_rows, int n_blocks, int& mr, int& nb) {
  const int per_group = kGroupM * n_blocks;
  const int first_m = (tile / per_group) * kGroupM;
  const int group_size = min(m_rows - first_m, kGroupM);
  const int local = tile % per_group;
  mr = first_m + local % group_size;
  nb = local / group_size;
}
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}
// Arrive on the mbarrier at the same shared-memory offset in CTA `rank` of the cluster.
__device__ __forceinline__ void mbar_arrive_cluster(uint64_t* bar, uint32_t rank) {
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(smem_addr(bar)), "r"(rank));
  // Default semantics (release at CTA scope), as CUTLASS's ClusterBarrier::arrive(cta_id) does: the
  // slot's readers are wgmma (complete at wgmma.wait), so no cluster-scope release is needed, and
  // .release.cluster made every k-block wait for this thread's outstanding loads (2x slower).
  asm volatile("mbarrier.arrive.shared::cluster.b64 _, [%0];" ::"r"(remote) : "memory");
}
// TMA load multicast to every CTA of the cluster in `mask` (same smem offset, same mbarrier offset).
__device__ __forceinline__ void tma_load_multicast(void* dst, const CUtensorMap* map, uint64_t* bar,
                                                   int k0, int row0, uint16_t mask) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster"
      " [%0], [%1, {%3, %4}], [%2], %5;" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(smem_addr(bar)), "r"(k0), "r"(row0), "h"(mask)
      : "memory");
}
#endif

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// Grouped large-M schedule, computed by one warp: rows[e] = expert e's first row (rows[E] = the
// end), tile_end[e] = tiles of experts 0..e (inclusive prefix sum; BM x BN tiles).
template <int BM>
__device__ void scan_expert_tiles(const std::int32_t* offsets, int num_experts, int total_rows, int n_blocks,
                                  int* rows, int* tile_end) {
  const int lane = threadIdx.x % 32;
  int carry = 0;
  for (int base = 0; base < num_experts; base += 32) {
    const int e = base + lane;
    int tiles = 0;
    if (e < num_experts) {
      const ExpertRows r = expert_rows(offsets, e, total_rows);
      rows[e] = r.begin;
      tiles = (r.end - r.begin + BM - 1) / BM * n_blocks;
    }
#pragma unroll
    for (int d = 1; d < 32; d *= 2) {
      const int v = __shfl_up_sync(~0u, tiles, d);
      if (lane >= d) tiles += v;
    }
    if (e < num_experts) tile_end[e] = carry + tiles;
    carry += __shfl_sync(~0u, tiles, 31);
  }
  if (lane == 0) rows[num_experts] = clamped_offset(offsets, num_experts, total_rows);
}

#endif

// Where one BM x BN output tile of the large-M kernel lies.
struct BigTile {
  int a_row;    // first A / output row of this CTA's BM rows
  int row_end;  // rows from here on belong to another expert (or lie past m): loaded, never stored
  int n0;       // first output column
  int b_row;    // first row of the tile in the (stacked) weight map: expert * n + n0
  int expert;   // whose weight scales (0 for a dense GEMM)
};

// Shared memory of the grouped large-M schedule: rows [E + 1] and tile_end [E].
constexpr int grouped_schedule_bytes(int num_experts) { return (2 * num_experts + 1) * 4; }

// Grid: persistent, a multiple of CM CTAs; clusters of (CM, 1, 1). The CTAs of a cluster own the
// CM vertically adjacent tiles (m-blocks CM*mr + rank) of one n-block; each loads its own A tile
// and a 1/CM slice of the shared B tile, multicast to all of them, so B's L2 traffic drops by CM.
// GROUPED: m is total_rows, map_b covers the stacked [num_experts * n, k] weights, and offsets
// [num_experts + 1] (device memory) give each expert's rows; dense: offsets is unused.
template <int BM, int BN, int STAGES, int CM, bool PIPE, bool GROUPED>
__global__ void __launch_bounds__(BigShape<BM, BN, STAGES, CM>::kThreads, 1)
    sm90_gemm_kernel(const __grid_constant__ CUtensorMap map_a,
                     const __grid_constant__ CUtensorMap map_b, const float* __restrict__ a_scales,
                     const float* __restrict__ b_scales, __nv_bfloat16* __restrict__ out, int m,
                     int n, int k, const std::int32_t* __restrict__ offsets, int num_experts) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  pdl_wait();
  pdl_launch_dependents();
  using S = BigShape<BM, BN, STAGES, CM>;
  static_assert(!GROUPED || CM == 1, "grouped tiles are per expert: no cluster along m");
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = swizzle_aligned(smem_raw);
  uint8_t* smem_a = smem;
  uint8_t* smem_b = smem + STAGES * S::kABytes;
  uint64_t* full = reinterpret_cast<uint64_t*>(smem_b + STAGES * S::kBBytes);
  uint64_t* empty = full + STAGES;
  int* sched_rows = reinterpret_cast<int*>(empty + STAGES);  // GROUPED: [num_experts + 1]
  int* sched_tile_end = sched_rows + num_experts + 1;         // GROUPED: [num_experts]

  const int num_kb = (k + kBlockK - 1) / kBlockK;
  const int m_rows = (m + BM * CM - 1) / (BM * CM);  // row-blocks of CM m-blocks
  const int n_blocks = (n + BN - 1) / BN;
  const int b_scale_rows = (n + 127) / 128;
  const int rank = CM == 1 ? 0 : static_cast<int>(blockIdx.x % CM);
  const int cluster_id = blockIdx.x / CM;
  const int num_clusters = gridDim.x / CM;
  const int wg = threadIdx.x / kWarpgroup;

  if (threadIdx.x == 0) {
    prefetch_map(&map_a);
    prefetch_map(&map_b);
    for (int s = 0; s < STAGES; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], S::kConsumers * 4 * CM);  // every consumer warp of every CTA
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  if constexpr (GROUPED) {
    if (threadIdx.x < 32) scan_expert_tiles<BM>(offsets, num_experts, m, n_blocks, sched_rows, sched_tile_end);
  }
  if constexpr (CM > 1) {
    cluster_sync();  // peers' barriers exist before any multicast or remote arrive
  } else {
    __syncthreads();
  }
  const int tiles = GROUPED ? sched_tile_end[num_experts - 1] : m_rows * n_blocks;

  // Tile -> rows, columns, weights. Dense: the grouped order of tile_coords over the whole output.
  // Grouped: the expert whose prefix range holds the tile (binary search; empty experts have
  // none), then tile_coords within that expert's m-blocks.
  auto locate = [&](int tile) {
    BigTile t;
    int mr, nb;
    if constexpr (GROUPED) {
      int lo = 0, hi = num_experts - 1;
      while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (sched_tile_end[mid] > tile) hi = mid; else lo = mid + 1;
      }
      const int begin = sched_rows[lo];
      t.row_end = max(begin, sched_rows[lo + 1]);
      t.expert = lo;
      tile_coords(tile - (lo > 0 ? sched_tile_end[lo - 1] : 0), (t.row_end - begin + BM - 1) / BM, n_blocks, mr, nb);
      t.a_row = begin + mr * BM;
      t.n0 = nb * BN;
      t.b_row = lo * n + t.n0;
    } else {
      tile_coords(tile, m_rows, n_blocks, mr, nb);
      t.a_row = (mr * CM + rank) * BM;
      t.row_end = m;
      t.n0 = nb * BN;
      t.b_row = t.n0;
      t.expert = 0;
    }
    return t;
  };

  if (wg == 0) {
    // Producer warpgroup: one thread streams k-blocks of every tile this CTA owns.
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(kProducerRegs));
    if (threadIdx.x == 0) {
      uint32_t it = 0;
      for (int tile = cluster_id; tile < tiles; tile += num_clusters) {
        const BigTile t = locate(tile);
        const int row_a = t.a_row;
        const int row_b = t.b_row + rank * S::kBSliceRows;
        for (int kb = 0; kb < num_kb; ++kb, ++it) {
          const int s = it % STAGES;
          mbar_wait(&empty[s], ((it / STAGES) & 1) ^ 1);
          mbar_arrive_expect_tx(&full[s], S::kStageBytes);
          tma_load(smem_a + s * S::kABytes, &map_a, &full[s], kb * kBlockK, row_a);
          uint8_t* dst_b = smem_b + s * S::kBBytes + rank * S::kBSliceRows * kBlockK;
          if constexpr (CM > 1) {
            tma_load_multicast(dst_b, &map_b, &full[s], kb * kBlockK, row_b, (1u << CM) - 1);
          } else {
            tma_load(dst_b, &map_b, &full[s], kb * kBlockK, row_b);
          }
        }
      }
    }
  } else {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(kConsumerRegs));
    const int consumer = wg - 1;
    const int warp = (threadIdx.x % kWarpgroup) / 32;
    const int lane = threadIdx.x % 32;
    float acc[BN / 2];
    float part[BN / 2];
    float part2[PIPE ? BN / 2 : 1];
    uint32_t it = 0;
    for (int tile = cluster_id; tile < tiles; tile += num_clusters) {
      const BigTile t = locate(tile);
      const int n0 = t.n0;
      const int row_end = t.row_end;
      const int row0 = t.a_row + consumer * kWgmmaM + AccLayout::row(warp, lane, 0);
      const int row1 = row0 + 8;
      const float* sa0 = a_scales + static_cast<size_t>(min(row0, row_end - 1)) * num_kb;
      const float* sa1 = a_scales + static_cast<size_t>(min(row1, row_end - 1)) * num_kb;
      const float* sbe = b_scales + static_cast<size_t>(t.expert) * b_scale_rows * num_kb;
      const float* sb0 = sbe + static_cast<size_t>(n0 / 128) * num_kb;
      const float* sb1 = sbe + static_cast<size_t>(min(n0 / 128 + 1, b_scale_rows - 1)) * num_kb;
      const int straddle_col = 128 - n0 % 128;  // first tile column in the second scale block
#pragma unroll
      for (int i = 0; i < BN / 2; ++i) acc[i] = 0.f;

      // One k-block: wait for its stage, issue 4 wgmma into a fresh partial accumulator P.
      auto issue = [&](float (&P)[BN / 2], uint32_t itx) {
        const int s = itx % STAGES;
        mbar_wait(&full[s], (itx / STAGES) & 1);
        const uint8_t* a_tile = smem_a + s * S::kABytes + consumer * kWgmmaM * kBlockK;
        const uint8_t* b_tile = smem_b + s * S::kBBytes;
        fence_regs(P);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < kBlockK / kWgmmaK; ++kk) {
          Wgmma<BN>::mma(P, sw128_desc(a_tile + kk * kWgmmaK), sw128_desc(b_tile + kk * kWgmmaK),
                         kk > 0 ? 1 : 0);
        }
        wgmma_commit();
      };
      // Each warp releases the slot in every CTA of the cluster (the B slice it read came from
      // all of them).
      auto release = [&](uint32_t itx) {
        const int s = itx % STAGES;
        if constexpr (CM > 1) {
          if (lane < CM) mbar_arrive_cluster(&empty[s], lane);
        } else {
          if (lane == 0) mbar_arrive(&empty[s]);
        }
      };
      struct Scales {
        float a0, a1, b0, b1;
      };
      auto load_scales = [&](int kb) {
        Scales r;
        r.a0 = __ldg(sa0 + kb);
        r.a1 = __ldg(sa1 + kb);
        r.b0 = __ldg(sb0 + kb);
        r.b1 = S::kOneScaleBlock ? r.b0 : __ldg(sb1 + kb);
        return r;
      };
      // acc += P * a_scale[row] * b_scale[block(col)]
      auto promote = [&](float (&P)[BN / 2], const Scales& sc) {
        const float s00 = sc.a0 * sc.b0, s10 = sc.a1 * sc.b0;
        const float s01 = sc.a0 * sc.b1, s11 = sc.a1 * sc.b1;
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
          const bool second = !S::kOneScaleBlock && 8 * j >= straddle_col;
          const float r0 = second ? s01 : s00;
          const float r1 = second ? s11 : s10;
          acc[4 * j + 0] += P[4 * j + 0] * r0;
          acc[4 * j + 1] += P[4 * j + 1] * r0;
          acc[4 * j + 2] += P[4 * j + 2] * r1;
          acc[4 * j + 3] += P[4 * j + 3] * r1;
        }
      };

      if constexpr (!PIPE) {
        // Scales are loaded one k-block ahead so their latency hides behind a whole k-block.
        Scales sc = load_scales(0);
        for (int kb = 0; kb < num_kb; ++kb, ++it) {
          const Scales next = load_scales(min(kb + 1, num_kb - 1));
          issue(part, it);
          wgmma_wait<0>();
          fence_regs(part);
          release(it);
          promote(part, sc);
          sc = next;
        }
      } else {
        // Two partial accumulators: k-block kb+1's wgmma runs while kb is promoted, so this
        // warpgroup keeps the tensor core busy by itself.
        Scales sc0 = load_scales(0);
        issue(part, it);
        int kb = 0;
        for (; kb + 2 < num_kb; kb += 2, it += 2) {  // kb in flight in part; kb+1, kb+2 exist
          const Scales sc1 = load_scales(kb + 1);
          issue(part2, it + 1);
          wgmma_wait<1>();
          fence_regs(part);
          release(it);
          promote(part, sc0);
          sc0 = load_scales(kb + 2);
          issue(part, it + 2);
          wgmma_wait<1>();
          fence_regs(part2);
          release(it + 1);
          promote(part2, sc1);
        }
        if (kb + 1 < num_kb) {
          const Scales sc1 = load_scales(kb + 1);
          issue(part2, it + 1);
          wgmma_wait<1>();
          fence_regs(part);
          release(it);
          promote(part, sc0);
          wgmma_wait<0>();
          fence_regs(part2);
          release(it + 1);
          promote(part2, sc1);
          it += 2;
        } else {
          wgmma_wait<0>();
          fence_regs(part);
          release(it);
          promote(part, sc0);
          it += 1;
        }
      }

      // Epilogue: bf16 pairs, masked for ragged m / n (odd n falls back to single stores).
      const bool pair_ok = (n & 1) == 0;
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) {
        const int col = n0 + AccLayout::col(lane, 4 * j);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int row = h == 0 ? row0 : row1;
          if (row >= row_end) continue;
          const float v0 = acc[4 * j + 2 * h], v1 = acc[4 * j + 2 * h + 1];
          __nv_bfloat16* dst = out + static_cast<size_t>(row) * n + col;
          if (pair_ok && col + 1 < n) {
            *reinterpret_cast<__nv_bfloat162*>(dst) = __floats2bfloat162_rn(v0, v1);
          } else {
            if (col < n) dst[0] = __float2bfloat16_rn(v0);
            if (col + 1 < n) dst[1] = __float2bfloat16_rn(v1);
          }
        }
      }
    }
  }
  if constexpr (CM > 1) {
    cluster_sync();  // no CTA exits while a peer may still multicast into it or arrive on it
  }
#endif  // __CUDA_ARCH_FEAT_SM90_ALL
}

// ------------------------------------------------------------------------------------------------
// Kernel 2: small M (decode), swap-AB + cluster split-K.
// ------------------------------------------------------------------------------------------------
// The ring holds up to kMaxStages stages; the launcher uses kDefaultStages, or fewer when that
// lets every CTA of the launch be resident at once (one wave). Deeper rings measured slower
// (run 5: 4096x4096 m=1 with 8 stages at 2 CTAs/SM 14.8 us against 8.7 us with 4 stages).
template <int MT>
struct DecodeShape {
  static_assert(MT % 16 == 0 && MT <= 64, "tokens per tile: 16, 32 or 64 (8-row TMA groups, 1KB aligned)");
  static constexpr int kMaxStages = 8;
  static constexpr int kDefaultStages = 4;
  static constexpr int kMinStages = 2;
  static constexpr int kWBytes = kDecodeRows * kBlockK;
  static constexpr int kXBytes = MT * kBlockK;
  static constexpr int kStageBytes = kWBytes + kXBytes;
  static constexpr int kRedBytes = kDecodeRows * MT * 4;  // reuses the weight stages after the loop
  static_assert(kRedBytes <= kMinStages * kWBytes, "the reduction tile must fit in the weight stages");
  static constexpr int smem_bytes(int stages) { return stages * kStageBytes + kMaxStages * 8 + kSwizzleAlign; }
};

// grid = (split, token tiles of MT, n tiles of 64); clusters of (split, 1, 1). Token tiles vary
// before weight tiles, so the CTAs that read one weight tile run together and share it in L2.
// GROUPED: m is total_rows, map_w covers the stacked [num_experts * n, k] weights, and grid y is
// (slot of an expert with rows) x (t_tiles token tiles per expert); dense: offsets, num_experts
// and t_tiles are unused.
// SWIGLU: after its stores, the gate_up epilogue (sm90_blockwise.h: SwigluEpilogue).
template <int MT, bool GROUPED, bool SWIGLU>
__global__ void __launch_bounds__(kWarpgroup)
    sm90_decode_kernel(const __grid_constant__ CUtensorMap map_w,
                       const __grid_constant__ CUtensorMap map_x, const float* __restrict__ a_scales,
                       const float* __restrict__ b_scales, __nv_bfloat16* __restrict__ out, int m,
                       int n, int k, int kb_per_split, int stages, const std::int32_t* __restrict__ offsets,
                       int num_experts, int t_tiles, bool offsets_settled, const SwigluEpilogue swiglu) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using S = DecodeShape<MT>;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = swizzle_aligned(smem_raw);
  uint8_t* smem_w = smem;
  uint8_t* smem_x = smem + stages * S::kWBytes;
  uint64_t* full = reinterpret_cast<uint64_t*>(smem_x + stages * S::kXBytes);
  // After the main loop every TMA write has landed and been read: the weight stages hold the
  // partial tile for the cluster reduction, as [MT tokens][64 rows].
  float* red = reinterpret_cast<float*>(smem_w);

  const int num_kb = (k + kBlockK - 1) / kBlockK;
  const int split = gridDim.x;
  const int rank = blockIdx.x;  // == %cluster_ctarank: cluster dims are (split, 1, 1)
  const int n0 = blockIdx.z * kDecodeRows;
  // The CTAs of a cluster share blockIdx.y and z, so they all take the same exits below.
  int t0 = blockIdx.y * MT;
  int row_end = m;  // tokens from here on are another expert's: loaded, never stored
  int expert = 0;
  if constexpr (GROUPED) {
    // Which weights this CTA reads depends on the offsets, an earlier kernel's output: of the
    // kernel just before (wait for it first), or settled before it began (offsets_settled: read
    // them through L2 now, and the weights stream while that kernel runs, as for a dense GEMM).
    if (!offsets_settled) {
      pdl_wait();
      pdl_launch_dependents();
    }
    const L2Offsets settled{offsets};
    expert = nth_expert_with_rows<kWarpgroup>(settled, num_experts, m, blockIdx.y / t_tiles);
    if (expert < 0) return;
    const ExpertRows r = expert_rows(settled, expert, m);
    row_end = r.end;
    t0 = r.begin + (blockIdx.y % t_tiles) * MT;
    if (t0 >= row_end) return;
  }
  const int w_row = expert * n + n0;  // first row of the tile in the (stacked) weight map
  const int kb_begin = rank * kb_per_split;
  const int kb_count = max(0, min(num_kb, kb_begin + kb_per_split) - kb_begin);
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;

  // The first `stages` weight loads start before pdl_wait (dense: the weights are no kernel's
  // output, so they stream while the previous kernel finishes); the activations after it.
  if (threadIdx.x == 0) {
    prefetch_map(&map_w);
    prefetch_map(&map_x);
    for (int s = 0; s < stages; ++s) mbar_init(&full[s], 1);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    for (int i = 0; i < min(stages, kb_count); ++i) {
      mbar_arrive_expect_tx(&full[i], S::kStageBytes);
      tma_load(smem_w + i * S::kWBytes, &map_w, &full[i], (kb_begin + i) * kBlockK, w_row);
    }
  }
  if (!GROUPED || offsets_settled) {
    pdl_wait();
    pdl_launch_dependents();
  }
  if (threadIdx.x == 0) {
    for (int i = 0; i < min(stages, kb_count); ++i)
      tma_load(smem_x + i * S::kXBytes, &map_x, &full[i], (kb_begin + i) * kBlockK, t0);
  }
  __syncthreads();

  // Scales: the 64 weight rows lie in one 128-row scale block (n0 is a multiple of 64); the
  // tokens of this thread are its accumulator columns.
  const float* sb = b_scales + (static_cast<size_t>(expert) * ((n + 127) / 128) + n0 / 128) * num_kb;
  const float* sa[MT / 4];
#pragma unroll
  for (int c = 0; c < MT / 4; ++c) {
    const int t = t0 + AccLayout::col(lane, 4 * (c / 2) + (c % 2));
    sa[c] = a_scales + static_cast<size_t>(min(t, row_end - 1)) * num_kb;
  }

  float acc[MT / 2];
  float part[MT / 2];
#pragma unroll
  for (int i = 0; i < MT / 2; ++i) acc[i] = 0.f;

  // Scales are loaded one k-block ahead so their latency hides behind a whole k-block.
  float bscale = kb_count > 0 ? __ldg(sb + kb_begin) : 0.f;
  float ascale[MT / 4];
#pragma unroll
  for (int c = 0; c < MT / 4; ++c) ascale[c] = kb_count > 0 ? __ldg(sa[c] + kb_begin) : 0.f;

  for (int i = 0; i < kb_count; ++i) {
    const int s = i % stages;
    const int kb = kb_begin + i;
    const int kn = kb_begin + min(i + 1, kb_count - 1);
    const float bscale_next = __ldg(sb + kn);
    float ascale_next[MT / 4];
#pragma unroll
    for (int c = 0; c < MT / 4; ++c) ascale_next[c] = __ldg(sa[c] + kn);
    mbar_wait(&full[s], (i / stages) & 1);

    fence_regs(part);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kBlockK / kWgmmaK; ++kk) {
      Wgmma<MT>::mma(part, sw128_desc(smem_w + s * S::kWBytes + kk * kWgmmaK),
                     sw128_desc(smem_x + s * S::kXBytes + kk * kWgmmaK), kk > 0 ? 1 : 0);
    }
    wgmma_commit();
    wgmma_wait<0>();
    fence_regs(part);
    // Every warp's share of the wgmma has read slot s: refill it with k-block i + stages.
    named_barrier_sync(1, kWarpgroup);
    if (threadIdx.x == 0 && i + stages < kb_count) {
      mbar_arrive_expect_tx(&full[s], S::kStageBytes);
      tma_load(smem_w + s * S::kWBytes, &map_w, &full[s], (kb + stages) * kBlockK, w_row);
      tma_load(smem_x + s * S::kXBytes, &map_x, &full[s], (kb + stages) * kBlockK, t0);
    }
#pragma unroll
    for (int j = 0; j < MT / 8; ++j) {
      acc[4 * j + 0] += part[4 * j + 0] * (bscale * ascale[2 * j + 0]);
      acc[4 * j + 1] += part[4 * j + 1] * (bscale * ascale[2 * j + 1]);
      acc[4 * j + 2] += part[4 * j + 2] * (bscale * ascale[2 * j + 0]);
      acc[4 * j + 3] += part[4 * j + 3] * (bscale * ascale[2 * j + 1]);
    }
    bscale = bscale_next;
#pragma unroll
    for (int c = 0; c < MT / 4; ++c) ascale[c] = ascale_next[c];
  }

  // Partial tile -> shared memory as [token][row], then each rank reduces a slice over the cluster.
#pragma unroll
  for (int i = 0; i < MT / 2; ++i) {
    red[AccLayout::col(lane, i) * kDecodeRows + AccLayout::row(warp, lane, i)] = acc[i];
  }
  if (split > 1) {
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;" ::: "memory");
  } else {
    __syncthreads();
  }
  constexpr int kElems = kDecodeRows * MT;
  const int chunk = (kElems + split - 1) / split;
  const int e_end = min(kElems, (rank + 1) * chunk);
  const uint32_t red_addr = smem_addr(red);
  for (int e = rank * chunk + threadIdx.x; e < e_end; e += kWarpgroup) {
    float sum = 0.f;
    for (int q = 0; q < split; ++q) {
      uint32_t remote;
      float v;
      asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(red_addr + 4 * e), "r"(q));
      asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(remote) : "memory");
      sum += v;
    }
    const int t = t0 + e / kDecodeRows;
    const int row = n0 + e % kDecodeRows;
    if (t < row_end && row < n) out[static_cast<size_t>(t) * n + row] = __float2bfloat16_rn(sum);
  }
  if (split > 1) {
    // No CTA may exit while another still reads its shared memory.
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;" ::: "memory");
  }
  if constexpr (SWIGLU) {
    // The gate_up epilogue (SwigluEpilogue): this CTA's stores, fenced, then its count; the
    // group's last producer reads the group's gate and up columns through L2 and quantizes them.
    __shared__ int last;
    const int inter = n / 2, groups = inter / kQuantGroup;
    const int group = (n0 % inter) / kQuantGroup;  // n0: a multiple of 64; inter: of 128
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
      // Grouped: a counter set per (expert slot, token tile) = grid y (dense: y = 0).
      int* counter = swiglu.counters + static_cast<size_t>(blockIdx.y) * groups + group;
      last = atomicAdd(counter, 1) + 1 == 4 * split;
      if (last) *counter = 0;  // every producer has counted: ready for the next call
    }
    __syncthreads();
    if (last) {
      __threadfence();
      const int col = group * kQuantGroup + lane * kQuantValuesPerLane;
      for (int t = t0 + warp; t < min(row_end, t0 + MT); t += kWarpgroup / 32) {
        const float scale = silu_mul_quantize_group(reinterpret_cast<const bf16*>(out) + static_cast<size_t>(t) * n,
                                                    inter, col, col < inter,
                                                    reinterpret_cast<std::uint32_t*>(swiglu.q8) +
                                                        (static_cast<size_t>(t) * inter + col) / 4);
        if (lane == 0) swiglu.scales[static_cast<size_t>(t) * groups + group] = scale;
      }
    }
  }
#endif  // __CUDA_ARCH_FEAT_SM90_ALL
}

// ------------------------------------------------------------------------------------------------
// Host side.
// ------------------------------------------------------------------------------------------------
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder(std::string* why) {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = nullptr;
  static std::string error;
  static std::once_flag once;
  std::call_once(once, [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q{};
    const cudaError_t e =
        cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q);
    if (e != cudaSuccess || q != cudaDriverEntryPointSuccess || p == nullptr) {
      error = std::string("cuTensorMapEncodeTiled not available from the driver: ") +
              cudaGetErrorString(e);
    } else {
      fn = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
    }
  });
  if (!fn && why) *why = error;
  return fn;
}

// A row-major FP8 matrix [rows, k] as a TMA map with box {128 bytes of k, box_rows}, 128B swizzle.
Status make_map(CUtensorMap* map, const void* base, int rows, int k, int box_rows, const char* what) {
  std::string why;
  auto encode = tensor_map_encoder(&why);
  if (!encode) return Status::Error(why);
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(k), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(k)};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(kBlockK), static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t elem_strides[2] = {1, 1};
  const CUresult r = encode(map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<void*>(base), dims,
                            strides, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                            CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) {
    return Status::Error(std::string("cuTensorMapEncodeTiled failed for ") + what + " [" +
                         std::to_string(rows) + ", " + std::to_string(k) + "], box rows " +
                         std::to_string(box_rows) + ": CUresult " + std::to_string(static_cast<int>(r)));
  }
  return Status::Ok();
}

// A launch of `grid` CTAs in clusters of `cluster_x` along x, with programmatic dependent launch
// where enabled (common/pdl.cuh); `attrs` must outlive the config.
cudaLaunchConfig_t cluster_launch_config(dim3 grid, int threads, int smem_bytes, int cluster_x, cudaStream_t stream,
                                         cudaLaunchAttribute (&attrs)[2]) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = dim3(threads);
  cfg.dynamicSmemBytes = smem_bytes;
  cfg.stream = stream;
  attrs[0].id = cudaLaunchAttributeClusterDimension;
  attrs[0].val.clusterDim.x = cluster_x;
  attrs[0].val.clusterDim.y = 1;
  attrs[0].val.clusterDim.z = 1;
  cfg.attrs = attrs;
  cfg.numAttrs = 1 + pdl_attribute(&attrs[1]);
  return cfg;
}

// One launch's problem, dense or grouped: the launchers below serve both.
struct Problem {
  const fp8_e4m3* a;
  const float* a_scales;
  const fp8_e4m3* b;
  const float* b_scales;
  bf16* out;
  int m;  // rows of A and out (grouped: total_rows)
  int n;
  int k;
  const std::int32_t* offsets;  // grouped: [num_experts + 1] in device memory; dense: nullptr
  int num_experts;              // dense: 1 (the weight map has num_experts * n rows)
  int group_rows;               // the most rows one group (expert) has (dense: m)
  int groups;                   // the most groups with rows (dense: 1)
  SwigluEpilogue swiglu{};      // decode only (launch_sm90_gate_up_swiglu, its grouped form)
  bool offsets_settled = false;  // grouped: Fp8GroupedGemmArgs::offsets_settled (decode kernel only)

  static Problem dense(const Fp8GemmArgs& g) {
    return {g.a, g.a_scales, g.b, g.b_scales, g.out, g.m, g.n, g.k, nullptr, 1, g.m, 1};
  }
  // An expert has at most total_rows rows, and at most total_rows experts have any.
  static Problem grouped(const Fp8GroupedGemmArgs& g) {
    Problem p{g.a,   g.a_scales,      g.b,          g.b_scales,     g.out,
              g.total_rows, g.n, g.k, g.offsets, g.num_experts, std::min(g.max_rows_per_expert, g.total_rows),
              std::min(g.num_experts, g.total_rows)};
    static const bool early = knob_value(kGroupedEarlyWeightsKnob) == 1;  // 0: wait first anyway (A/B)
    p.offsets_settled = g.offsets_settled && early;
    return p;
  }
  // Row-blocks of `block_m` rows at most (exact for a dense problem).
  long long m_blocks_bound(int block_m) const { return grouped_row_blocks_bound(m, group_rows, groups, block_m); }
};

template <int BM, int BN, int STAGES, int CM, bool GROUPED, bool PIPE = (BN <= 128)>
Status run_big(const Problem& a, const DeviceInfo& dev, cudaStream_t stream) {
  using S = BigShape<BM, BN, STAGES, CM>;
  // Grouped: the schedule (grouped_schedule_bytes) follows the barriers; the opt-in covers the
  // most experts, the launch only what this one needs.
  constexpr int kMaxSmemBytes = S::kSmemBytes + (GROUPED ? grouped_schedule_bytes(kMaxGroupedExperts) : 0);
  static_assert(kMaxSmemBytes <= kSm90MaxSmemPerCta, "the grouped schedule must fit beside the pipeline");
  const int smem_bytes = S::kSmemBytes + (GROUPED ? grouped_schedule_bytes(a.num_experts) : 0);
  CUtensorMap map_a, map_b;
  FP8LM_RETURN_IF_ERROR(make_map(&map_a, a.a, a.m, a.k, BM, "A"));
  FP8LM_RETURN_IF_ERROR(make_map(&map_b, a.b, a.num_experts * a.n, a.k, S::kBSliceRows, "B"));
  auto kernel = sm90_gemm_kernel<BM, BN, STAGES, CM, PIPE, GROUPED>;
  // Per process (one device assumed): opt in to the shared memory, and count how many clusters
  // can be resident at once (clusters must fit in a GPC, so this can be < sm_count / CM).
  static int max_clusters = -1;
  static std::string setup_error;
  static std::once_flag once;
  std::call_once(once, [&] {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSmemBytes);
    if (e == cudaSuccess && CM > 1) e = cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 0);
    if (e == cudaSuccess) {
      cudaLaunchAttribute attrs[2];
      const cudaLaunchConfig_t cfg = cluster_launch_config(dim3(CM * dev.sm_count), S::kThreads, kMaxSmemBytes, CM, nullptr, attrs);
      e = cudaOccupancyMaxActiveClusters(&max_clusters, kernel, &cfg);
    }
    if (std::getenv("FP8LM_SM90_VERBOSE")) {
      std::fprintf(stderr, "sm90 gemm m%dn%ds%dc%d%s%s: %d resident clusters, %d bytes smem\n", BM, BN, STAGES, CM,
                   PIPE ? " pipe" : "", GROUPED ? " grouped" : "", max_clusters, kMaxSmemBytes);
    }
    if (e != cudaSuccess || max_clusters < 1) {
      setup_error = std::string("sm90 gemm: cannot run ") + std::to_string(kMaxSmemBytes) +
                    "-byte CTAs in clusters of " + std::to_string(CM) + ": " + cudaGetErrorString(e);
    }
  });
  if (!setup_error.empty()) return Status::Error(setup_error);

  // Persistent: one cluster per tile up to the resident limit (grouped: per tile of the bound;
  // the kernel counts the real tiles from the offsets and surplus CTAs find none).
  const long long tiles = a.m_blocks_bound(BM * CM) * ((a.n + BN - 1) / BN);
  const int clusters = static_cast<int>(std::max(1LL, std::min<long long>(tiles, max_clusters)));
  cudaLaunchAttribute attrs[2];
  const cudaLaunchConfig_t cfg = cluster_launch_config(dim3(CM * clusters), S::kThreads, smem_bytes, CM, stream, attrs);
  const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, map_a, map_b, a.a_scales, a.b_scales,
                                           reinterpret_cast<__nv_bfloat16*>(a.out), a.m, a.n, a.k, a.offsets,
                                           a.num_experts);
  FP8LM_RETURN_IF_ERROR(cuda_status(e, "sm90 gemm launch"));
  return cuda_status(cudaGetLastError(), "sm90 gemm launch");
}

// About kDecodeCtasPerSm CTAs per SM in one wave: the largest power-of-two split (<= the cluster
// limit and the k-blocks) that keeps tiles x split within that. Measured on an H200
// (NOTES-sm90.md, run 3): fewer CTAs leave bandwidth unused, more pay the cluster reduction and
// per-CTA start-up more often than they gain.
// FP8LM_DECODE_CTAS_PER_SM (1-8) in the environment replaces the 3 (an A/B knob).
int decode_split(long long tiles, int k, const DeviceInfo& device) {
  static const int kDecodeCtasPerSm = knob_value(kDecodeCtasPerSmKnob);
  const int num_kb = (k + kBlockK - 1) / kBlockK;
  const long long target = static_cast<long long>(kDecodeCtasPerSm) * std::max(device.sm_count, 1);
  int split = 1;
  while (split * 2 <= kMaxCluster && split * 2 <= num_kb && tiles * split * 2 <= target) split *= 2;
  return split;
}

// The deepest ring the decode launcher may pick: kDefaultStages, or FP8LM_DECODE_MAX_STAGES
// (kMinStages..kMaxStages; an A/B knob). In a decode step the ring's first `stages` weight loads
// are issued before pdl_wait, so a deeper ring streams more of a layer's weights while the kernel
// before it runs; in isolation (run 5, H200, NOTES-sm90.md) 8 stages took 14.8 µs on 4096x4096,
// m = 1.
static_assert(DecodeShape<16>::kMaxStages == DecodeShape<64>::kMaxStages &&
                  DecodeShape<16>::kDefaultStages == DecodeShape<64>::kDefaultStages &&
                  DecodeShape<16>::kMinStages == DecodeShape<64>::kMinStages,
              "one ring-depth knob for every token tile");
static_assert(kDecodeMaxStagesKnob.lo == DecodeShape<16>::kMinStages &&
                  kDecodeMaxStagesKnob.hi == DecodeShape<16>::kMaxStages &&
                  kDecodeMaxStagesKnob.fallback == DecodeShape<16>::kDefaultStages,
              "FP8LM_DECODE_MAX_STAGES's range and default are the ring's (knobs.h)");
int decode_max_stages() {
  static const int value = knob_value(kDecodeMaxStagesKnob);
  return value;
}

template <int MT, bool GROUPED, bool SWIGLU = false>
Status run_decode(const Problem& a, int split, const DeviceInfo& dev, cudaStream_t stream) {
  using S = DecodeShape<MT>;
  CUtensorMap map_w, map_x;
  FP8LM_RETURN_IF_ERROR(make_map(&map_w, a.b, a.num_experts * a.n, a.k, kDecodeRows, "B"));
  FP8LM_RETURN_IF_ERROR(make_map(&map_x, a.a, a.m, a.k, MT, "A"));
  auto kernel = sm90_decode_kernel<MT, GROUPED, SWIGLU>;
  // Per process (one device assumed): opt in to the largest ring, and count resident CTAs per SM
  // for every ring size.
  static int per_sm[S::kMaxStages + 1] = {};
  static std::string setup_error;
  static std::once_flag once;
  std::call_once(once, [&] {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         S::smem_bytes(S::kMaxStages));
    for (int st = S::kMinStages; e == cudaSuccess && st <= S::kMaxStages; ++st) {
      e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm[st], kernel, kWarpgroup, S::smem_bytes(st));
    }
    if (e != cudaSuccess || per_sm[S::kMinStages] < 1) {
      setup_error = std::string("sm90 decode: cannot run a ") + std::to_string(S::smem_bytes(S::kMaxStages)) +
                    "-byte ring: " + cudaGetErrorString(e);
    }
  });
  if (!setup_error.empty()) return Status::Error(setup_error);

  const int num_kb = (a.k + kBlockK - 1) / kBlockK;
  split = std::clamp(split, 1, std::min(kMaxCluster, num_kb));
  const int kb_per_split = (num_kb + split - 1) / split;
  split = (num_kb + kb_per_split - 1) / kb_per_split;  // no rank without work
  const int n_tiles = (a.n + kDecodeRows - 1) / kDecodeRows;
  // Grid y: token tiles of the largest group, times the groups that can have rows.
  const int t_tiles = (a.group_rows + MT - 1) / MT;
  const long long y_tiles = static_cast<long long>(a.groups) * t_tiles;
  if (y_tiles > kMaxGridY || n_tiles > kMaxGridY) {
    return Status::Error("sm90 decode: " + std::to_string(y_tiles) + " token tiles x " + std::to_string(n_tiles) +
                         " weight tiles: more than " + std::to_string(kMaxGridY) + " in one launch");
  }
  // The deepest ring up to decode_max_stages() (default kDefaultStages; and no deeper than the
  // k-blocks a CTA streams) that keeps the launch in one wave; when none does, the shallowest (most
  // CTAs resident). Measured (run 5): 51200x5120 m=1 went from 86.8 us (4 stages, 1.2 waves) to
  // 70.7 us (3712 GB/s).
  const long long ctas = static_cast<long long>(split) * n_tiles * y_tiles;
  int stages = S::kMinStages;
  const int deepest = decode_max_stages();
  for (int st = std::clamp(kb_per_split, S::kMinStages, deepest); st >= S::kMinStages; --st) {
    if (ctas <= static_cast<long long>(per_sm[st]) * std::max(dev.sm_count, 1)) {
      stages = st;
      break;
    }
  }

  cudaLaunchAttribute attrs[2];
  const cudaLaunchConfig_t cfg = cluster_launch_config(dim3(split, static_cast<unsigned>(y_tiles), n_tiles), kWarpgroup,
                                                       S::smem_bytes(stages), split, stream, attrs);
  const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, map_w, map_x, a.a_scales, a.b_scales,
                                           reinterpret_cast<__nv_bfloat16*>(a.out), a.m, a.n, a.k,
                                           kb_per_split, stages, a.offsets, a.num_experts, t_tiles,
                                           GROUPED && a.offsets_settled, a.swiglu);
  FP8LM_RETURN_IF_ERROR(cuda_status(e, "sm90 decode launch"));
  return cuda_status(cudaGetLastError(), "sm90 decode launch");
}

// `config` (one of configs(), or an experiment-only dense one) on a problem with m >= 1.
template <bool GROUPED>
Status launch_problem(const Problem& p, const GemmConfig& config, const DeviceInfo& device, cudaStream_t stream) {
  if (device.sm_version() != 90) {
    return Status::Error("sm90 kernels need an sm_90 GPU (H100/H200/H20); this is " + device.name +
                         " (sm_" + std::to_string(device.sm_version()) + ")");
  }
  const int bm = config.block_m, bn = config.block_n, st = config.stages;
  if (config.kernel == GemmKernel::kSm90Wgmma) {
    const int cm = config.cluster_m;
    if (bm == 128 && bn == 128 && st == 6 && cm == 1) return run_big<128, 128, 6, 1, GROUPED>(p, device, stream);
    if (bm == 64 && bn == 128 && st == 8 && cm == 1) return run_big<64, 128, 8, 1, GROUPED>(p, device, stream);
#if defined(FP8LM_SM90_EXPERIMENTS)  // cmake -DFP8LM_SM90_EXPERIMENTS=ON; timed by `bench gemm --all-configs`
    if constexpr (!GROUPED) {
      // B multicast over a 2-CTA cluster: as fast as cm 1 up to 4096x6144x4096, slower at
      // 16384x24576x4096 (run 4), so not in the production list.
      if (bm == 128 && bn == 128 && st == 6 && cm == 2) return run_big<128, 128, 6, 2, false>(p, device, stream);
      if (bm == 128 && bn == 192 && st == 5 && cm == 1) return run_big<128, 192, 5, 1, false>(p, device, stream);
      if (bm == 128 && bn == 192 && st == 5 && cm == 2) return run_big<128, 192, 5, 2, false>(p, device, stream);
      if (bm == 128 && bn == 128 && st == 4 && cm == 1) return run_big<128, 128, 4, 1, false, false>(p, device, stream);
    }
#endif
  } else if (config.kernel == GemmKernel::kSm90Decode && bn == kDecodeRows) {
    const long long tiles = static_cast<long long>((p.n + kDecodeRows - 1) / kDecodeRows) * p.m_blocks_bound(bm);
    const int split = config.split_k > 0 ? config.split_k : decode_split(tiles, p.k, device);
    // stages = the ring's capacity; run_decode picks the depth per shape.
    if (bm == 16 && st == DecodeShape<16>::kMaxStages) {
      // The gate_up epilogue, up to 16 tokens (per expert), in its own instantiation.
      if (p.swiglu.q8 != nullptr) return run_decode<16, GROUPED, true>(p, split, device, stream);
      return run_decode<16, GROUPED>(p, split, device, stream);
    }
    if (bm == 32 && st == DecodeShape<32>::kMaxStages) return run_decode<32, GROUPED>(p, split, device, stream);
    if (bm == 64 && st == DecodeShape<64>::kMaxStages) return run_decode<64, GROUPED>(p, split, device, stream);
  }
  return Status::Error(std::string("sm90: configuration not compiled") + (GROUPED ? " for grouped GEMMs" : "") +
                       ": kernel " + std::to_string(static_cast<int>(config.kernel)) + " block_m " +
                       std::to_string(bm) + " block_n " + std::to_string(bn) + " stages " + std::to_string(st) +
                       " cluster_m " + std::to_string(config.cluster_m));
}

}  // namespace impl

using namespace impl;

std::span<const GemmConfig> configs() {
  // {kernel, block_m, block_n, stages, split_k, cluster_m}; keep in sync with the dispatch below.
  static const GemmConfig all[] = {
      {GemmKernel::kSm90Wgmma, 128, 128, 6, 0, 1},
      {GemmKernel::kSm90Wgmma, 64, 128, 8, 0, 1},
      {GemmKernel::kSm90Decode, 16, kDecodeRows, DecodeShape<16>::kMaxStages, 0, 1},
      {GemmKernel::kSm90Decode, 32, kDecodeRows, DecodeShape<32>::kMaxStages, 0, 1},
      {GemmKernel::kSm90Decode, 64, kDecodeRows, DecodeShape<64>::kMaxStages, 0, 1},
#if defined(FP8LM_SM90_EXPERIMENTS)  // after the production configs, so the heuristic never picks them
      {GemmKernel::kSm90Wgmma, 128, 128, 6, 0, 2},
      {GemmKernel::kSm90Wgmma, 128, 192, 5, 0, 1},
      {GemmKernel::kSm90Wgmma, 128, 192, 5, 0, 2},
      {GemmKernel::kSm90Wgmma, 128, 128, 4, 0, 1},
#endif
  };
  return all;
}

Status launch_sm90_blockwise(const Fp8GemmArgs& args, const GemmConfig& config,
                             const DeviceInfo& device, cudaStream_t stream) {
  if (args.m == 0) return Status::Ok();
  return launch_problem<false>(Problem::dense(args), config, device, stream);
}

namespace {
// The epilogue runs on the 16-token decode kernel's own instantiation: at most 16 rows (per expert).
template <bool GROUPED>
Status launch_gate_up_swiglu(Problem p, const SwigluEpilogue& epilogue, const GemmConfig& config,
                             const DeviceInfo& device, cudaStream_t stream) {
  const bool fits = config.kernel == GemmKernel::kSm90Decode && config.block_m == 16 && p.group_rows <= 16;
  if (!fits || p.n % 256 != 0 || epilogue.q8 == nullptr || epilogue.scales == nullptr ||
      epilogue.counters == nullptr)
    return Status::Error("sm90 gate_up epilogue: needs the 16-token decode configuration, at most 16 rows (per "
                         "expert), n % 256 == 0 and q8, scales and counters");
  if (p.m == 0) return Status::Ok();
  p.swiglu = epilogue;
  return launch_problem<GROUPED>(p, config, device, stream);
}
}  // namespace

Status launch_sm90_gate_up_swiglu(const Fp8GemmArgs& args, const SwigluEpilogue& epilogue, const GemmConfig& config,
                                  const DeviceInfo& device, cudaStream_t stream) {
  return launch_gate_up_swiglu<false>(Problem::dense(args), epilogue, config, device, stream);
}

Status launch_sm90_grouped_gate_up_swiglu(const Fp8GroupedGemmArgs& args, const SwigluEpilogue& epilogue,
                                          const GemmConfig& config, const DeviceInfo& device, cudaStream_t stream) {
  return launch_gate_up_swiglu<true>(Problem::grouped(args), epilogue, config, device, stream);
}

Status launch_sm90_grouped(const Fp8GroupedGemmArgs& args, const GemmConfig& config, const DeviceInfo& device,
                           cudaStream_t stream) {
  if (args.total_rows == 0) return Status::Ok();
  return launch_problem<true>(Problem::grouped(args), config, device, stream);
}

}  // namespace fp8lm::sm90
