// RMSNorm over rows of bf16 (transformers' Qwen3RMSNorm): one warp per row, 16-byte loads.
// Pass 1 sums squares in the order the header defines (lane l owns 8-element vectors l, l + 32,
// ...; xor butterfly), pass 2 re-reads the row (L1/L2 hit) and writes bf16(w * bf16(x * r)).
// Memory bound: 4 bytes per element plus the weight (cached).
//
// rmsnorm_quantize fuses the residual add before and the 1x128 quantizer after (one warp per row
// too, so the sum of squares keeps rmsnorm's order): pass 1 adds (x = bf16(x + residual), stored)
// and sums squares of the stored values exactly as rmsnorm does; pass 2 walks the row by
// 128-element groups, lane l normalizing elements 4l..4l+3 of the group (the same per-element
// arithmetic as rmsnorm), and quantizes the group with quantize_group_warp.
#include <cuda_runtime.h>

#include <string>

#include "common/bf16_vec.cuh"
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

template <bool kAdd>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    rmsnorm_quantize_kernel(bf16* x, const bf16* residual, const bf16* __restrict__ weight, bf16* out,
                            std::uint32_t* q8, float* scales, int rows, int dim, float eps) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const int vectors = dim / kVec;
  const std::size_t at = static_cast<std::size_t>(row) * dim;
  // Not __restrict__: pass 2 reads what other lanes of the warp stored to x in pass 1.
  uint4* xv = reinterpret_cast<uint4*>(x + at);

  float partial = 0.0f;
  for (int v = lane; v < vectors; v += 32) {
    float e[kVec];
    vec::unpack8(xv[v], e);
    if constexpr (kAdd) {
      float y[kVec];
      vec::unpack8(reinterpret_cast<const uint4*>(residual + at)[v], y);
#pragma unroll
      for (int i = 0; i < kVec; ++i) e[i] = __fadd_rn(e[i], y[i]);
      const uint4 sum = vec::pack8(e);
      xv[v] = sum;
      vec::unpack8(sum, e);  // the sum of squares reads the stored bf16 values, as rmsnorm would
    }
#pragma unroll
    for (int i = 0; i < kVec; ++i) partial = __fadd_rn(partial, __fmul_rn(e[i], e[i]));
  }
  const float r = math::rms_rsqrt(vec::warp_butterfly_sum(partial), dim, eps);
  __syncwarp();  // pass 1's stores to x are visible to the whole warp

  const int groups = ceil_div(dim, kQuantGroup);
  for (int g = 0; g < groups; ++g) {  // every lane runs every group: quantize_group_warp shuffles
    const int col = g * kQuantGroup + lane * kQuantValuesPerLane;
    const bool active = col < dim;  // dim % 16 == 0: a lane's 4 values are all in or all out
    float h[kQuantValuesPerLane] = {0.f, 0.f, 0.f, 0.f};
    if (active) {
      float w[kQuantValuesPerLane];
      vec::unpack4(*reinterpret_cast<const uint2*>(x + at + col), h);
      vec::unpack4(__ldg(reinterpret_cast<const uint2*>(weight + col)), w);
#pragma unroll
      for (int i = 0; i < kQuantValuesPerLane; ++i)
        h[i] = vec::round_bf16(__fmul_rn(w[i], vec::round_bf16(__fmul_rn(h[i], r))));
      if (out != nullptr) *reinterpret_cast<uint2*>(out + at + col) = vec::pack4(h);
    }
    if (q8 != nullptr) {
      const float scale = quantize_group_warp(h, active, q8 + (at + col) / 4);
      if (lane == 0) scales[static_cast<std::size_t>(row) * groups + g] = scale;
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
  const int blocks = ceil_div(a.rows, kWarpsPerBlock);
  auto* q8 = reinterpret_cast<std::uint32_t*>(a.q8);
  if (a.residual != nullptr)
    rmsnorm_quantize_kernel<true><<<blocks, kWarpsPerBlock * 32, 0, stream>>>(a.x, a.residual, a.weight, a.out, q8,
                                                                             a.scales, a.rows, a.dim, a.eps);
  else
    rmsnorm_quantize_kernel<false><<<blocks, kWarpsPerBlock * 32, 0, stream>>>(a.x, nullptr, a.weight, a.out, q8,
                                                                              a.scales, a.rows, a.dim, a.eps);
  return cuda_status(cudaGetLastError(), "rmsnorm_quantize launch");
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
  rmsnorm_kernel<<<blocks, kWarpsPerBlock * 32, 0, stream>>>(a.x, a.weight, a.out, a.rows, a.dim, a.x_stride,
                                                             a.out_stride, a.eps);
  return cuda_status(cudaGetLastError(), "rmsnorm launch");
}

}  // namespace fp8lm
