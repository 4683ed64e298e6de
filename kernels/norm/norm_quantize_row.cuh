// One row of rmsnorm_quantize (fp8lm/layer_ops.h) on the calling CTA's warps, shared by the
// rmsnorm_quantize kernel (kernels/norm/rmsnorm.cu) and the kernels that end with the next norm
// (moe_combine with a norm: kernels/moe/moe.cu). Every thread of the CTA calls preload() (before
// pdl_wait: norm weights are no kernel's output) and then run(); up to kMaxRowWarps warps.
//
// Pass 1: every warp sums the squares of the whole row (of bf16(x + residual) with the add) in
// rmsnorm's lane order (lane l: vectors l, l + 32, ... one after the other), so all warps hold
// rmsnorm's bits; a lane's loads go in batches of kBatch vectors before they are summed (a
// 4096-wide row: 2 memory round trips instead of 16). Pass 2 splits the row's 128-element groups
// over the warps, lane l normalizing elements 4l..4l+3 of a group (rmsnorm's per-element
// arithmetic) and quantize_group_warp quantizing it, the loads of kBatch groups issued together;
// with the add, each warp stores x = bf16(x + residual) for its own groups only after every warp
// has read the old x (__syncthreads).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/bf16_vec.cuh"
#include "common/quant_group.cuh"
#include "fp8lm/layer_math.h"
#include "fp8lm/numerics.h"

namespace fp8lm {

// preload() fetches the weights of pass 2's first batch.
template <bool kAdd>
struct NormQuantizeRow {
  static constexpr int kMaxRowWarps = 8;
  static constexpr int kVec = 8;    // bf16 per 16-byte load
  static constexpr int kBatch = 8;  // loads in flight per lane: pass 1's vectors, pass 2's groups

  const bf16* weight;
  int dim;
  uint2 preloaded[kBatch];

  __device__ __forceinline__ int lane() const { return threadIdx.x % 32; }
  __device__ __forceinline__ int warp() const { return threadIdx.x / 32; }
  __device__ __forceinline__ int warps() const { return blockDim.x / 32; }
  __device__ __forceinline__ int groups() const { return ceil_div(dim, kQuantGroup); }
  // The lane's 4 weights of group g (zeros past a ragged end).
  __device__ __forceinline__ uint2 weight_at(int g) const {
    const int col = g * kQuantGroup + lane() * kQuantValuesPerLane;
    return col < dim ? __ldg(reinterpret_cast<const uint2*>(weight + col)) : uint2{0u, 0u};
  }

  __device__ __forceinline__ void preload(const bf16* weight_, int dim_) {
    weight = weight_, dim = dim_;
#pragma unroll
    for (int i = 0; i < kBatch; ++i)
      if (warp() + i * warps() < groups()) preloaded[i] = weight_at(warp() + i * warps());
  }

  // e = bf16(e + y): the residual add, rounded as rmsnorm_quantize's (and its twin's) add.
  template <int N>
  static __device__ __forceinline__ void add_residual(float (&e)[N], const float (&y)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) e[i] = vec::round_bf16(__fadd_rn(e[i], y[i]));
  }

  // x, residual (kAdd), out (optional), q8 (optional, 4 codes per word) and scales: this row's.
  // Not __restrict__: pass 2 stores to x what pass 1 read.
  __device__ __forceinline__ void run(bf16* x, const bf16* residual, bf16* out, std::uint32_t* q8, float* scales,
                                      float eps) {
    const int vectors = dim / kVec, lane_ = lane(), warp_ = warp(), warps_ = warps(), groups_ = groups();
    const uint4* xv = reinterpret_cast<const uint4*>(x);
    const uint4* rv = reinterpret_cast<const uint4*>(residual);
    float partial = 0.0f;
    for (int v0 = lane_; v0 < vectors; v0 += 32 * kBatch) {
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
            add_residual(e, y);
          }
#pragma unroll
          for (int i = 0; i < kVec; ++i) partial = __fadd_rn(partial, __fmul_rn(e[i], e[i]));
        }
    }
    const float r = math::rms_rsqrt(vec::warp_butterfly_sum(partial), dim, eps);
    __syncthreads();  // every warp has read the row before any stores to x (the sum; or out, if it is x)

    // Pass 2: the warp's groups g = warp + i * warps, kBatch at a time, lane l on elements 4l..4l+3
    // of each: every load of a batch first (x, residual, and the weights past the preloaded first
    // batch: one round trip of memory latency per batch, not per group), then normalize, store x
    // (with the add) and out, quantize.
    for (int i0 = 0; i0 * warps_ + warp_ < groups_; i0 += kBatch) {
      uint2 xs[kBatch], ys[kBatch], ws[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int g = (i0 + b) * warps_ + warp_, col = g * kQuantGroup + lane_ * kQuantValuesPerLane;
        if (g < groups_ && col < dim) {  // dim % 16 == 0: a lane's 4 values are all in or all out
          xs[b] = *reinterpret_cast<const uint2*>(x + col);
          if constexpr (kAdd) ys[b] = *reinterpret_cast<const uint2*>(residual + col);
          ws[b] = i0 == 0 ? preloaded[b] : weight_at(g);
        }
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int g = (i0 + b) * warps_ + warp_, col = g * kQuantGroup + lane_ * kQuantValuesPerLane;
        if (g >= groups_) break;  // warp-uniform
        const bool active = col < dim;
        float h[kQuantValuesPerLane] = {0.f, 0.f, 0.f, 0.f};
        if (active) {
          vec::unpack4(xs[b], h);
          if constexpr (kAdd) {
            float y[kQuantValuesPerLane];
            vec::unpack4(ys[b], y);
            add_residual(h, y);
            *reinterpret_cast<uint2*>(x + col) = vec::pack4(h);
          }
          float w[kQuantValuesPerLane];
          vec::unpack4(ws[b], w);
#pragma unroll
          for (int i = 0; i < kQuantValuesPerLane; ++i)
            h[i] = vec::round_bf16(__fmul_rn(w[i], vec::round_bf16(__fmul_rn(h[i], r))));
          if (out != nullptr) *reinterpret_cast<uint2*>(out + col) = vec::pack4(h);
        }
        if (q8 != nullptr) {
          const float scale = quantize_group_warp(h, active, q8 + col / 4);
          if (lane_ == 0) scales[g] = scale;
        }
      }
    }
  }
};

}  // namespace fp8lm
