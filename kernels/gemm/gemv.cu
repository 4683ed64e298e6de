// FP8 blockwise GEMM for a few tokens on CUDA cores (GemmKernel::kGemv; sm_89 and sm_90).
//
// At m <= 4 a GEMM is a stream of weight bytes with 2 m FLOPs per byte, which CUDA cores do many
// times over (2 MB of weights: ~0.2 us of conversions and FMAs spread over the SMs). What costs is
// latency: the tensor-core decode kernel (sm90_blockwise.cu) pays a cluster launch, tensor-map
// fetches, mbarrier set-up, a ring of TMA loads and a distributed-shared-memory reduction, ~5 us
// for the 1-6 MB GEMMs of the 0.6B model where the bytes take ~1 us. Here every lane issues its
// 16-byte weight loads at once (before pdl_wait: no kernel writes weights), and the only
// synchronisation is one shared-memory reduction at the end.
//
// Layout. A CTA has kWarps warps and owns kRows = 4 weight rows x kTokens tokens of the output.
// Lane l of a warp reads row l / 8, 16-byte chunk l % 8 of a 128-wide k-block, so one warp load
// covers the CTA's 4 rows x one k-block; warp w takes k-blocks w, w + kWarps, ... (split-K inside
// the CTA). Per chunk a lane converts its 16 weights and each token's 16 activations to fp32,
// forms the 16-term dot product and adds dot * a_scale[token, kb] * b_scale[row / 128, kb] to the
// token's sum. The 8 lanes of a row then reduce by shuffles, the warps through shared memory, and
// the sum is rounded to bf16 once. Same product as gemm.h: a per-128-k partial times both scales,
// summed in fp32 (the order differs, so the tolerance is kAccumTolFp32).
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

#include "common/pdl.cuh"
#include "fp8lm/cuda_status.h"
#include "gemm/grouped_slots.cuh"

namespace fp8lm::gemv {

namespace {

constexpr int kBlockK = kQuantGroup;    // 128: one scale group per k-block
constexpr int kChunks = kBlockK / 16;   // 16-byte chunks per k-block row
constexpr int kRows = 32 / kChunks;     // weight rows per CTA: one warp load covers them x a k-block
constexpr int kTokens = 4;              // tokens per CTA (grid y covers more)
constexpr int kWarps = 8;               // split-K inside the CTA
constexpr int kThreads = kWarps * 32;
constexpr int kInFlight = 4;            // k-blocks a lane loads before it converts any
constexpr long long kMaxGridY = 65535;

// 16 e4m3 codes -> 16 floats (cvt.rn.f16x2.e4m3x2 per pair, then f16 -> f32: exact).
__device__ __forceinline__ void fp8x16_to_float(const uint4& v, float (&out)[16]) {
  const std::uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const __half2_raw pair = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(w[i] >> (16 * h)), __NV_E4M3);
      const float2 f = __half22float2(__half2(pair));
      out[4 * i + 2 * h] = f.x;
      out[4 * i + 2 * h + 1] = f.y;
    }
  }
}

// Weights: read once, not worth keeping in L1.
__device__ __forceinline__ uint4 load_weights(const fp8_e4m3* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

struct Work {
  const fp8_e4m3* b;        // this expert's [n, k] weights
  const float* b_scales;    // and their [ceil(n/128), ceil(k/128)] scales
  int row_begin, row_end;   // the token rows of A / out this CTA computes (<= kTokens)
};

// The problem as gemm_fp8_grouped's; dense is one expert with offsets == nullptr (rows [0, m)).
template <bool GROUPED>
__device__ bool find_work(const Fp8GroupedGemmArgs& g, int t_tiles, Work* w) {
  int e = 0, begin = 0, end = g.total_rows;
  if constexpr (GROUPED) {
    e = nth_expert_with_rows<kThreads>(g.offsets, g.num_experts, g.total_rows, blockIdx.y / t_tiles);
    if (e < 0) return false;
    begin = clamped_offset(g.offsets, e, g.total_rows);
    end = max(begin, clamped_offset(g.offsets, e + 1, g.total_rows));
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
  const int row = static_cast<int>(blockIdx.x) * kRows + lane / kChunks;  // this lane's weight row
  const int chunk = lane % kChunks;
  const int num_kb = ceil_div(g.k, kBlockK);
  const bool row_ok = row < g.n;
  auto chunk_ok = [&](int kb) { return row_ok && kb < num_kb && kb * kBlockK + chunk * 16 < g.k; };

  Work w{};
  if constexpr (GROUPED) {
    pdl_wait();  // the offsets (which expert, which rows) are the previous kernel's output
    if (!find_work<true>(g, t_tiles, &w)) return;
  } else {
    find_work<false>(g, t_tiles, &w);
  }
  const fp8_e4m3* w_row = w.b + static_cast<std::size_t>(row_ok ? row : 0) * g.k + chunk * 16;
  const float* b_scale_row = w.b_scales + static_cast<std::size_t>(row_ok ? row / kQuantGroup : 0) * num_kb;

  // The first k-blocks' weights in flight before pdl_wait (dense: nothing here depends on it).
  uint4 wv[kInFlight];
#pragma unroll
  for (int i = 0; i < kInFlight; ++i) {
    const int kb = warp + i * kWarps;
    wv[i] = chunk_ok(kb) ? load_weights(w_row + kb * kBlockK) : make_uint4(0, 0, 0, 0);
  }
  if constexpr (!GROUPED) pdl_wait();
  pdl_launch_dependents();

  const int tokens = w.row_end - w.row_begin;
  float sum[kTokens] = {};
  for (int kb0 = warp; kb0 < num_kb; kb0 += kInFlight * kWarps) {
#pragma unroll
    for (int i = 0; i < kInFlight; ++i) {
      const int kb = kb0 + i * kWarps;
      if (!chunk_ok(kb)) continue;
      float wf[16];
      fp8x16_to_float(wv[i], wf);
      // The next round's load for this slot, issued before the arithmetic on this one.
      const int next = kb + kInFlight * kWarps;
      wv[i] = chunk_ok(next) ? load_weights(w_row + next * kBlockK) : make_uint4(0, 0, 0, 0);
      const float b_scale = b_scale_row[kb];
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        if (t >= tokens) break;
        const std::size_t a_row = static_cast<std::size_t>(w.row_begin + t);
        const uint4 xv = *reinterpret_cast<const uint4*>(g.a + a_row * g.k + kb * kBlockK + chunk * 16);
        float xf[16];
        fp8x16_to_float(xv, xf);
        float dot = 0.f;
#pragma unroll
        for (int j = 0; j < 16; ++j) dot = fmaf(wf[j], xf[j], dot);
        sum[t] = fmaf(dot, g.a_scales[a_row * num_kb + kb] * b_scale, sum[t]);
      }
    }
  }

  // The 8 lanes of a row (consecutive lanes), then the warps.
#pragma unroll
  for (int t = 0; t < kTokens; ++t) {
#pragma unroll
    for (int d = 1; d < kChunks; d *= 2) sum[t] += __shfl_xor_sync(~0u, sum[t], d);
  }
  if (chunk == 0) {
#pragma unroll
    for (int t = 0; t < kTokens; ++t) partial[warp][lane / kChunks][t] = sum[t];
  }
  __syncthreads();
  if (threadIdx.x < kRows * kTokens) {
    const int r = threadIdx.x / kTokens, t = threadIdx.x % kTokens;
    const int out_row = static_cast<int>(blockIdx.x) * kRows + r;
    if (out_row < g.n && t < tokens) {
      float total = 0.f;
#pragma unroll
      for (int v = 0; v < kWarps; ++v) total += partial[v][r][t];
      reinterpret_cast<__nv_bfloat16*>(g.out)[static_cast<std::size_t>(w.row_begin + t) * g.n + out_row] =
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
  const long long y = static_cast<long long>(slots) * t_tiles;
  if (y > kMaxGridY) {
    return Status::Error("gemv: " + std::to_string(slots) + " experts x " + std::to_string(t_tiles) +
                         " token tiles; one launch takes " + std::to_string(kMaxGridY));
  }
  const dim3 grid(static_cast<unsigned>(ceil_div(g.n, kRows)), static_cast<unsigned>(y));
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
