// FP8 blockwise GEMM for a few tokens, weights streamed straight into mma fragments
// (GemmKernel::kGemv; sm_89 and sm_90).
//
// At m <= 8 a GEMM is a stream of weight bytes; what costs beyond the bytes is latency: the
// tensor-core decode kernel (sm90_blockwise.cu) pays a cluster launch, tensor-map fetches,
// mbarrier set-up, a ring of TMA loads and a distributed-shared-memory reduction, ~4-5 us for the
// 1-6 MB GEMMs of the 0.6B model where the bytes take ~1 us. Here every lane issues its 16-byte
// weight loads at once (before pdl_wait: no kernel writes weights), and the only synchronisation
// is one shared-memory reduction at the end.
//
// Layout. A CTA owns 16 weight rows x 8 tokens of the output (one m16n8 mma tile) and kWarps
// warps split its k-blocks (warp w: k-blocks w, w + kWarps, ...). Lane (g = lane / 4, t = lane %
// 4) loads, per 128-wide k-block, 16-byte chunks t and t + 4 of rows g and g + 8, and the same two
// chunks of token g's activations. Since a dot product does not care in which order its k terms
// come, each 4-byte group j of a chunk is fed to one m16n8k16 mma as the lane's own fragment
// elements: A {row g, row g + 8} x k {2t, 2t + 1} <- bytes 0-1, k {2t + 8, 2t + 9} <- bytes 2-3,
// B (token g) the same bytes of the activation chunk; the weight and activation bytes of every k
// meet in the same product (gemv_kblock.cuh, shared with the persistent decode kernel). FP8 ->
// fp16 is exact (cvt.rn.f16x2.e4m3x2), products of fp16 are exact in the fp32 accumulators, so
// each k-block's partial is an fp32 sum as in gemm.h, promoted with
// a_scale[token, kb] * b_scale[rows / 128, kb] (the 16 rows share a 128-row scale block).
// The first version converted to fp32 and used FMAs: instruction-bound, ~2x slower per token
// added (bench/results/gemm-2026-11-28-nvidia-h200-gemv.md); here 8 tokens cost as much as one.
//
// Grouped (MoE decode): grid y = expert slots x token tiles, each CTA finds its slot's expert
// (nth_expert_with_rows) and reads that expert's weights and rows; waits for the previous kernel
// first, since the offsets it reads are that kernel's output.
#include "gemm/gemv.h"

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "common/fp8_convert.cuh"
#include "common/pdl.cuh"
#include "common/ptx.cuh"
#include "fp8lm/cuda_status.h"
#include "gemm/gemv_kblock.cuh"
#include "gemm/grouped_slots.cuh"

namespace fp8lm::gemv {

namespace {

constexpr int kTokens = 8;             // tokens per CTA: the mma N (grid y covers more)
constexpr int kWarps = 8;              // split-K inside the CTA
constexpr int kThreads = kWarps * 32;
constexpr int kInFlight = 2;           // k-blocks a lane has loaded ahead of its arithmetic
// Grid y = expert slots x token tiles: validate() bounds the experts, kMaxRows the tiles.
static_assert(static_cast<long long>(kMaxGroupedExperts) * ((kMaxRows + kTokens - 1) / kTokens) <= 65535,
              "grid y must stay within its limit");

struct Work {
  const fp8_e4m3* b;       // this expert's [n, k] weights
  const float* b_scales;   // and their [ceil(n/128), ceil(k/128)] scales
  int row_begin, row_end;  // the token rows of A / out this CTA computes (<= kTokens)
};

// The problem as gemm_fp8_grouped's; dense is one expert with offsets == nullptr (rows [0, m)).
template <bool GROUPED>
__device__ bool find_work(const Fp8GroupedGemmArgs& g, int t_tiles, Work* w) {
  int e = 0, begin = 0, end = g.total_rows;
  if constexpr (GROUPED) {
    e = nth_expert_with_rows<kThreads>(g.offsets, g.num_experts, g.total_rows, blockIdx.y / t_tiles);
    if (e < 0) return false;
    const ExpertRows r = expert_rows(g.offsets, e, g.total_rows);
    begin = r.begin, end = r.end;
  }
  const Fp8GemmArgs p = grouped_expert_args(g, e, begin, end);
  w->b = p.b;
  w->b_scales = p.b_scales;
  w->row_begin = begin + static_cast<int>(blockIdx.y % t_tiles) * kTokens;
  w->row_end = min(end, w->row_begin + kTokens);
  return w->row_begin < w->row_end;
}

template <bool GROUPED>
__global__ void __launch_bounds__(kThreads) gemv_kernel(const Fp8GroupedGemmArgs g, int t_tiles) {
  __shared__ float partial[kWarps][kRows][kTokens];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int gid = lane / 4, tig = lane % 4;
  const int row0 = static_cast<int>(blockIdx.x) * kRows;
  const int num_kb = ceil_div(g.k, kBlockK);
  // Chunk c of this lane in k-block kb lies inside k (k % 16 == 0: a chunk is all in or all out).
  auto chunk_ok = [&](int kb, int c) { return kb < num_kb && kb * kBlockK + (tig + 4 * c) * 16 < g.k; };

  Work w{};
  if constexpr (GROUPED) {
    pdl_wait();  // the offsets (which expert, which rows) are the previous kernel's output
    if (!find_work<true>(g, t_tiles, &w)) return;
  } else {
    find_work<false>(g, t_tiles, &w);
  }
  const fp8_e4m3* w_rows[2];
  bool row_ok[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + gid + 8 * r;
    row_ok[r] = row < g.n;
    w_rows[r] = w.b + static_cast<std::size_t>(row_ok[r] ? row : 0) * g.k + tig * 16;
  }
  auto load_kb = [&](int kb, WeightChunks& out) {
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
      for (int c = 0; c < 2; ++c)
        out.v[r][c] = row_ok[r] && chunk_ok(kb, c) ? load_weights(w_rows[r] + kb * kBlockK + c * 64)
                                                  : make_uint4(0, 0, 0, 0);
  };

  // The first k-blocks' weights in flight before pdl_wait (dense: nothing here depends on it).
  WeightChunks wv[kInFlight];
#pragma unroll
  for (int i = 0; i < kInFlight; ++i) load_kb(warp + i * kWarps, wv[i]);
  if constexpr (!GROUPED) pdl_wait();
  pdl_launch_dependents();

  const int tokens = w.row_end - w.row_begin;
  const bool token_ok = gid < tokens;  // this lane's activation row (the mma B column gid)
  const fp8_e4m3* x_row = g.a + static_cast<std::size_t>(token_ok ? w.row_begin + gid : 0) * g.k + tig * 16;
  // The accumulator's tokens 2 tig, 2 tig + 1 and their scale rows.
  const float* a_scales[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int t = min(2 * tig + i, tokens - 1);
    a_scales[i] = g.a_scales + static_cast<std::size_t>(w.row_begin + t) * num_kb;
  }
  const float* b_scales = w.b_scales + static_cast<std::size_t>(row0 / kQuantGroup) * num_kb;

  float sum[4] = {};  // {row g, row g + 8} x {token 2 tig, 2 tig + 1}, as the mma accumulator
  for (int kb0 = warp; kb0 < num_kb; kb0 += kInFlight * kWarps) {
#pragma unroll
    for (int i = 0; i < kInFlight; ++i) {
      const int kb = kb0 + i * kWarps;
      if (kb >= num_kb) break;
      const WeightChunks cur = wv[i];
      load_kb(kb + kInFlight * kWarps, wv[i]);  // the next round's, before this one's arithmetic
      // Chunks past k are zeros (weights: load_kb), never skipped: mma.sync needs the whole warp.
      uint4 xv[2];
#pragma unroll
      for (int c = 0; c < 2; ++c)
        xv[c] = token_ok && chunk_ok(kb, c) ? *reinterpret_cast<const uint4*>(x_row + kb * kBlockK + c * 64)
                                            : make_uint4(0, 0, 0, 0);
      float acc[4] = {};
      kblock_mma(cur, xv, acc);
      const float b_scale = b_scales[kb];
      const float s0 = a_scales[0][kb] * b_scale, s1 = a_scales[1][kb] * b_scale;
      sum[0] = fmaf(acc[0], s0, sum[0]);
      sum[1] = fmaf(acc[1], s1, sum[1]);
      sum[2] = fmaf(acc[2], s0, sum[2]);
      sum[3] = fmaf(acc[3], s1, sum[3]);
    }
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) partial[warp][gid + 8 * (i / 2)][2 * tig + i % 2] = sum[i];
  __syncthreads();
  if (threadIdx.x < kRows * kTokens) {
    const int r = threadIdx.x / kTokens, t = threadIdx.x % kTokens;
    if (row0 + r < g.n && t < tokens) {
      float total = 0.f;
#pragma unroll
      for (int v = 0; v < kWarps; ++v) total += partial[v][r][t];
      reinterpret_cast<__nv_bfloat16*>(g.out)[static_cast<std::size_t>(w.row_begin + t) * g.n + row0 + r] =
          __float2bfloat16_rn(total);
    }
  }
}

template <bool GROUPED>
Status launch_kernel(const Fp8GroupedGemmArgs& g, int rows_bound, int slots, cudaStream_t stream) {
  if (rows_bound > kMaxRows) {
    return Status::Error("gemv: " + std::to_string(rows_bound) + " rows" + (GROUPED ? " per expert" : "") +
                         "; it takes at most " + std::to_string(kMaxRows) + " (a tensor-core configuration takes more)");
  }
  const int t_tiles = ceil_div(rows_bound, kTokens);
  const dim3 grid(static_cast<unsigned>(ceil_div(g.n, kRows)), static_cast<unsigned>(slots * t_tiles));
  return cuda_status(launch_pdl(gemv_kernel<GROUPED>, grid, dim3(kThreads), 0, stream, g, t_tiles),
                     GROUPED ? "gemv grouped launch" : "gemv launch");
}

constexpr GemmConfig kConfig{GemmKernel::kGemv, kTokens, kRows, kInFlight};

Status check_config(const GemmConfig& c) {
  if (c.kernel == kConfig.kernel && c.block_m == kConfig.block_m && c.block_n == kConfig.block_n &&
      c.stages == kConfig.stages)
    return Status::Ok();
  return Status::Error("gemv: no compiled kernel for configuration " + c.name());
}

}  // namespace

std::span<const GemmConfig> configs() {
  static const GemmConfig all[] = {kConfig};
  return all;
}

Status launch(const Fp8GemmArgs& a, const GemmConfig& config, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(check_config(config));
  const Fp8GroupedGemmArgs g{a.a, a.a_scales, a.b, a.b_scales, nullptr, a.out, a.m, 1, a.n, a.k, a.m};
  return launch_kernel<false>(g, a.m, 1, stream);
}

Status launch_grouped(const Fp8GroupedGemmArgs& g, const GemmConfig& config, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(check_config(config));
  return launch_kernel<true>(g, std::min(g.max_rows_per_expert, g.total_rows), std::min(g.num_experts, g.total_rows),
                             stream);
}

}  // namespace fp8lm::gemv
