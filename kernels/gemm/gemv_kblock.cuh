// One k-block of the GEMV's weight-stationary mma (gemv.cu explains the layout), shared by the
// GEMV kernel and the persistent decode kernel (kernels/decode/decode_layers.cu), so both compute
// the same bits for one token.
//
// Lane (g = lane / 4, t = lane % 4) holds, per 128-wide k-block, 16-byte chunks t and t + 4 of
// weight rows g and g + 8 and the same two chunks of token g's activations; each 4-byte group j
// of a chunk feeds one m16n8k16 mma as the lane's own fragment elements (a dot product does not
// care in which order its k terms come). FP8 -> fp16 is exact, products of fp16 are exact in the
// fp32 accumulators.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/fp8_convert.cuh"
#include "common/ptx.cuh"
#include "fp8lm/numerics.h"

namespace fp8lm::gemv {

inline constexpr int kBlockK = kQuantGroup;  // 128: one scale group per k-block
inline constexpr int kRows = 16;              // weight rows per tile: the mma M

// Weights: read once, not worth keeping in L1.
__device__ __forceinline__ uint4 load_weights(const fp8_e4m3* p) { return ptx::ld_global_nc_no_allocate(p); }

__device__ __forceinline__ std::uint32_t word(const uint4& v, int j) {
  return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;
}

// One k-block of one lane: chunks t and t + 4 of rows g and g + 8.
struct WeightChunks {
  uint4 v[2][2];  // [row g / g + 8][chunk t / t + 4]
};

// acc (the m16n8 accumulator: {row g, row g + 8} x {token 2 t, 2 t + 1}) += the k-block's
// products: weights `w`, this lane's activation chunks x[c] (token g's chunk t + 4 c; zeros for
// lanes without a token and chunks past k). Every lane of the warp must call it (mma.sync).
__device__ __forceinline__ void kblock_mma(const WeightChunks& w, const uint4 (&x)[2], float (&acc)[4]) {
#pragma unroll
  for (int c = 0; c < 2; ++c) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const std::uint32_t w0 = word(w.v[0][c], j), w1 = word(w.v[1][c], j), xj = word(x[c], j);
      const std::uint32_t a[4] = {fp8x2_to_f16x2(w0), fp8x2_to_f16x2(w1), fp8x2_to_f16x2(w0 >> 16),
                                  fp8x2_to_f16x2(w1 >> 16)};
      ptx::mma_f16_16816(acc, a, fp8x2_to_f16x2(xj), fp8x2_to_f16x2(xj >> 16));
    }
  }
}

}  // namespace fp8lm::gemv
