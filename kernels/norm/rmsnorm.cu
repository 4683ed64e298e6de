// RMSNorm over rows of bf16 (transformers' Qwen3RMSNorm): one warp per row, 16-byte loads.
// Pass 1 sums squares in the order the header defines (lane l owns 8-element vectors l, l + 32,
// ...; xor butterfly), pass 2 re-reads the row (L1/L2 hit) and writes bf16(w * bf16(x * r)).
// Memory bound: 4 bytes per element plus the weight (cached).
//
// rmsnorm_quantize fuses the residual add before and the 1x128 quantizer after: one CTA per row,
// the row's work spread over up to 8 warps (norm_quantize_row.cuh, which the MoE combine shares).
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "common/bf16_vec.cuh"
#include "common/pdl.cuh"
#include "norm/norm_quantize_row.cuh"
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
constexpr int kMaxRowWarps = NormQuantizeRow<false>::kMaxRowWarps;

template <bool kAdd>
__global__ void __launch_bounds__(kMaxRowWarps * 32)
    rmsnorm_quantize_kernel(bf16* x, const bf16* residual, const bf16* __restrict__ weight, bf16* out,
                            std::uint32_t* q8, float* scales, int dim, float eps) {
  NormQuantizeRow<kAdd> norm;
  norm.preload(weight, dim);
  pdl_wait();
  pdl_launch_dependents();
  const std::size_t at = static_cast<std::size_t>(blockIdx.x) * dim;
  norm.run(x + at, kAdd ? residual + at : nullptr, out != nullptr ? out + at : nullptr,
           q8 != nullptr ? q8 + at / 4 : nullptr,
           scales != nullptr ? scales + static_cast<std::size_t>(blockIdx.x) * ceil_div(dim, kQuantGroup) : nullptr, eps);
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
