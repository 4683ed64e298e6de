// RMSNorm over rows of bf16 (transformers' Qwen3RMSNorm): one warp per row, 16-byte loads.
// Pass 1 sums squares in the order the header defines (lane l owns 8-element vectors l, l + 32,
// ...; xor butterfly), pass 2 re-reads the row (L1/L2 hit) and writes bf16(w * bf16(x * r)).
// Memory bound: 4 bytes per element plus the weight (cached).
#include <cuda_runtime.h>

#include <string>

#include "common/bf16_vec.cuh"
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

}  // namespace

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
