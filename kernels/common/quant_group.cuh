// The 1x128 activation quantizer of fp8lm/quant.h for one warp and one group, shared by
// quantize_per_token_group and the kernels that fuse it (rmsnorm_quantize, silu_mul_quantize), so
// all compute what cpu::quantize_row computes: amax over the group, scale = scale_from_amax(amax),
// codes = rn_satfinite(v / scale) with IEEE division.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/fp8_convert.cuh"
#include "fp8lm/numerics.h"

namespace fp8lm {

inline constexpr int kQuantValuesPerLane = kQuantGroup / 32;  // 4
static_assert(kQuantValuesPerLane == 4, "each lane holds one 8-byte vector of 4 bf16 of its group");

// Lane l holds the group's values 4l..4l+3 (bf16 values as floats); lanes past a ragged group end
// pass active = false and zeros. All 32 lanes must call it. Returns the group's scale (in every
// lane) and, for active lanes, the 4 codes packed in one 32-bit word (lowest address lowest byte).
__device__ __forceinline__ float quantize_group_warp(const float (&v)[kQuantValuesPerLane], bool active,
                                                     std::uint32_t* codes) {
  float amax = fmaxf(fmaxf(fabsf(v[0]), fabsf(v[1])), fmaxf(fabsf(v[2]), fabsf(v[3])));
#pragma unroll
  for (int mask = 16; mask > 0; mask >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, mask));
  const float scale = scale_from_amax(amax);
  if (active) {
    // IEEE division (never the fast approximation), so the CPU twin's x / scale is bit-identical.
    const std::uint32_t lo = fp8x2_encode(__fdiv_rn(v[0], scale), __fdiv_rn(v[1], scale));
    const std::uint32_t hi = fp8x2_encode(__fdiv_rn(v[2], scale), __fdiv_rn(v[3], scale));
    *codes = lo | (hi << 16);
  }
  return scale;
}

}  // namespace fp8lm
