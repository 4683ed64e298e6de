// RMSNorm over rows of bf16 (transformers' Qwen3RMSNorm): one warp per row, 16-byte loads.
// Pass 1 sums squares in the order the header defines (lane l owns 8-element vectors l, l + 32,
// ...; xor butterfly), pass 2 re-reads the row (L1/L2 hit) and writes bf16(w * bf16(x * r)).
// Memory bound: 4 bytes per element plus the weight (cached).
//
// rmsnorm_quantize fuses the residual add before and the 1x128 quantizer after. One CTA per row:
// in pass 1 every warp sums the squares of the whole row (of bf16(x + residual) with the add) in
// rmsnorm's lane order, so all warps hold rmsnorm's bits; pass 2 splits the row's 128-element
// groups over the warps, lane l normalizing elements 4l..4l+3 of a group (rmsnorm's per-element
// arithmetic) and quantize_group_warp quantizing it; with the add, each warp stores x = bf16(x +
// residual) for its own groups only after every warp has read the old x (__syncthreads). A
// decode step's single row thus runs on up to 8 warps instead of walking its groups on one.
// Latency, not bandwidth, sets a decode row's time: pass 1 issues a lane's loads in batches of
// kBatch vectors before summing them (in the same order), so a 4096-wide row costs 2 memory round
// trips instead of 16, and each warp loads the norm weights of its first groups before pdl_wait
// (weights are no kernel's output), so that load overlaps the previous kernel.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "common/bf16_vec.cuh"
#include "common/pdl.cuh"
#include "common/quant_group.cuh"
#include "fp8lm/cuda_status.h"
#include "fp8lm/layer_math.h"
#include "fp8lm/layer_ops.h"

namespace fp8lm {

namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kVec = 8;  // bf16 per 16-byte load

__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    rmsnorm_kernel(const bf16* __restrict__ x, const bf16* __restrict__ weight, bf16* out, int rows, int dim,
                   int x_stride, int out_stride, float eps) {
  pdl_wait();
  pdl_launch_dependents();
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const int vectors = dim / kVec;
  // Not __restrict__: out may alias x (in place); each lane reads a vector before writing it.
  const uint4* xr = reinterpret_cast<const uint4*>(x + static_cast<std::size_t>(row) * x_stride);
  uint4* outr = reinterpret_cast<uint4*>(out + static_cast<std::size_t>(row) * out_stride);
  const uint4* wr = reinterpret_cast<const uint4*>(weight);

  float partial = 0.0f;
  for (int v = lane; v < vectors; v += 32) {
    float e[kVec];
    vec::unpack8(xr[v], e);
#pragma unroll
    for (int i = 0; i < kVec; ++i) partial = __fadd_rn(partial, __fmul_rn(e[i], e[i]));
  }
  const float r = math::rms_rsqrt(vec::warp_butterfly_sum(partial), dim, eps);

  for (int v = lane; v < vectors; v += 32) {
    float e[kVec], w[kVec];
    vec::unpack8(xr[v], e);
    vec::unpack8(__ldg(wr + v), w);
#pragma unroll
    for (int i = 0; i < kVec; ++i) e[i] = __fmul_rn(w[i], vec::round_bf16(__fmul_rn(e[i], r)));
    outr[v] = vec::pack8(e);
  }
}

// Up to this many warps share a row; fewer when the row has fewer 128-element groups.
constexpr int kMaxRowWarps = 8;
// Pass 1's loads in flight per lane (x and, with the add, residual: 2 x 8 16-byte registers).
constexpr int kBatch = 8;
// Groups per warp whose weights are loaded before pdl_wait (8 warps: rows up to 8192 wide).
constexpr int kPreloadGroups = 8;

template <bool kAdd>
__global__ void __launch_bounds__(kMaxRowWarps * 32)
    rmsnorm_quantize_kernel(bf16* x, const bf16* residual, const bf16* __restrict__ weight, bf16* out,
                            std::uint32_t* q8, float* scales, int dim, float eps) {
  const int row = blockIdx.x, lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const int groups = ceil_div(dim, kQuantGroup);
  auto weight_at = [&](int g) {  // the lane's 4 weights of group g (zeros past a ragged end)
    const int col = g * kQuantGroup + lane * kQuantValuesPerLane;
    return col < dim ? __ldg(reinterpret_cast<const uint2*>(weight + col)) : uint2{0u, 0u};
  };
  uint2 preloaded[kPreloadGroups];
#pragma unroll
  for (int i = 0; i < kPreloadGroups; ++i)
    if (warp + i * warps < groups) preloaded[i] = weight_at(warp + i * warps);
  pdl_wait();
  pdl_launch_dependents();
  const int vectors = dim / kVec;
  const std::size_t at = static_cast<std::size_t>(row) * dim;
  // Not __restrict__: pass 2 stores to x what pass 1 read.
  const uint4* xv = reinterpret_cast<const uint4*>(x + at);
  const uint4* rv = kAdd ? reinterpret_cast<const uint4*>(residual + at) : nullptr;

  // The sum of squares of x + residual rounded to bf16, as stored (what rmsnorm would read), in
  // rmsnorm's order: the lane's vectors v = lane, lane + 32, ... one after the other.
  float partial = 0.0f;
  for (int v0 = lane; v0 < vectors; v0 += 32 * kBatch) {
    uint4 xs[kBatch], ys[kBatch];
#pragma unroll
    for (int b = 0; b < kBatch; ++b)
      if (v0 + 32 * b < vectors) {
        xs[b] = xv[v0 + 32 * b];
        if constexpr (kAdd) ys[b] = rv[v0 + 32 * b];
      }
#pragma unroll
    for (int b = 0; b < kBatch; ++b)
      if (v0 + 32 * b < vectors) {
        float e[kVec];
        vec::unpack8(xs[b], e);
        if constexpr (kAdd) {
          float y[kVec];
          vec::unpack8(ys[b], y);
#pragma unroll
          for (int i = 0; i < kVec; ++i) e[i] = vec::round_bf16(__fadd_rn(e[i], y[i]));
        }
#pragma unroll
        for (int i = 0; i < kVec; ++i) partial = __fadd_rn(partial, __fmul_rn(e[i], e[i]));
      }
  }
  const float r = math::rms_rsqrt(vec::warp_butterfly_sum(partial), dim, eps);
  __syncthreads();  // every warp has read the row before any stores to x (the sum; or out, if it is x)

  // Group g with the lane's 4 weights w4: normalize (rmsnorm's per-element arithmetic), store x
  // (with the add) and out, quantize.
  auto normalize_group = [&](int g, uint2 w4) {
    const int col = g * kQuantGroup + lane * kQuantValuesPerLane;
    const bool active = col < dim;  // dim % 16 == 0: a lane's 4 values are all in or all out
    float h[kQuantValuesPerLane] = {0.f, 0.f, 0.f, 0.f};
    if (active) {
      vec::unpack4(*reinterpret_cast<const uint2*>(x + at + col), h);
      if constexpr (kAdd) {
        float y[kQuantValuesPerLane];
        vec::unpack4(*reinterpret_cast<const uint2*>(residual + at + col), y);
#pragma unroll
        for (int i = 0; i < kQuantValuesPerLane; ++i) h[i] = vec::round_bf16(__fadd_rn(h[i], y[i]));
        *reinterpret_cast<uint2*>(x + at + col) = vec::pack4(h);
      }
      float w[kQuantValuesPerLane];
      vec::unpack4(w4, w);
#pragma unroll
      for (int i = 0; i < kQuantValuesPerLane; ++i)
        h[i] = vec::round_bf16(__fmul_rn(w[i], vec::round_bf16(__fmul_rn(h[i], r))));
      if (out != nullptr) *reinterpret_cast<uint2*>(out + at + col) = vec::pack4(h);
    }
    if (q8 != nullptr) {
      const float scale = quantize_group_warp(h, active, q8 + (at + col) / 4);
      if (lane == 0) scales[static_cast<std::size_t>(row) * groups + g] = scale;
    }
  };
  // Every lane runs its warp's groups (quantize_group_warp shuffles); unrolled so that the
  // preloaded weights stay in registers.
#pragma unroll
  for (int i = 0; i < kPreloadGroups + 1; ++i) {
    if (i == kPreloadGroups) {
      for (int g = warp + i * warps; g < groups; g += warps) normalize_group(g, weight_at(g));
    } else if (warp + i * warps < groups) {
      normalize_group(warp + i * warps, preloaded[i]);
    }
  }
}

}  // namespace

Status rmsnorm_quantize(const RmsNormQuantizeArgs& a, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  if (a.rows == 0) return Status::Ok();
  if (!vec::aligned16(a.x) || !vec::aligned16(a.residual) || !vec::aligned16(a.weight) || !vec::aligned16(a.out) ||
      !vec::aligned16(a.q8) || !vec::aligned16(a.scales))
    return Status::Error("rmsnorm_quantize: x, residual, weight, out, q8 and scales must be 16-byte aligned");
  // Many rows fill the GPU with a few warps each (pass 1 is repeated per warp: L1 traffic).
  const int warps = std::min(ceil_div(a.dim, kQuantGroup), a.rows <= 1024 ? kMaxRowWarps : 2);
  auto* kernel = a.residual != nullptr ? rmsnorm_quantize_kernel<true> : rmsnorm_quantize_kernel<false>;
  return cuda_status(launch_pdl(kernel, a.rows, warps * 32, 0, stream, a.x, a.residual, a.weight, a.out,
                                reinterpret_cast<std::uint32_t*>(a.q8), a.scales, a.dim, a.eps),
                     "rmsnorm_quantize launch");
}

Status rmsnorm(const RmsNormArgs& a, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  if (a.rows == 0) return Status::Ok();
  if (a.dim % kVec != 0 || a.x_stride % kVec != 0 || a.out_stride % kVec != 0)
    return Status::Error("rmsnorm: dim = " + std::to_string(a.dim) + ", x_stride = " + std::to_string(a.x_stride) +
                         ", out_stride = " + std::to_string(a.out_stride) +
                         " must be multiples of 8 (rows are read in 16-byte vectors)");
  if (!vec::aligned16(a.x) || !vec::aligned16(a.weight) || !vec::aligned16(a.out))
    return Status::Error("rmsnorm: x, weight and out must be 16-byte aligned");
  const int blocks = ceil_div(a.rows, kWarpsPerBlock);
  return cuda_status(launch_pdl(rmsnorm_kernel, blocks, kWarpsPerBlock * 32, 0, stream, a.x, a.weight, a.out, a.rows,
                                a.dim, a.x_stride, a.out_stride, a.eps),
                     "rmsnorm launch");
}

}  // namespace fp8lm
