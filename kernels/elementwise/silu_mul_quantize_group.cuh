// One 128-channel group of silu_mul_quantize for one warp (elementwise.cu's kernel, and the sm90
// decode GEMM's gate_up epilogue, which quantizes groups of its own output): the same code, so the
// same bits.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "common/bf16_vec.cuh"
#include "common/quant_group.cuh"
#include "fp8lm/layer_math.h"
#include "fp8lm/numerics.h"

namespace fp8lm {

// bf16(bf16(silu(gate)) * up) as a float, the value silu_mul stores.
__device__ __forceinline__ float silu_mul_value(float gate, float up) {
  return vec::round_bf16(__fmul_rn(vec::round_bf16(math::silu_f32(gate)), up));
}

// Lane l: channels col .. col + 3 (col = group * 128 + 4 l; active = col < inter) of one token's
// gate_up row [gate (inter) | up (inter)]; writes the 4 codes to *codes (active lanes) and returns
// the group's scale. Loads go through L2 (ld.global.cg): the row may have been written by other
// CTAs of the same kernel. All 32 lanes call it.
__device__ __forceinline__ float silu_mul_quantize_group(const bf16* row, int inter, int col, bool active,
                                                         std::uint32_t* codes) {
  float act[kQuantValuesPerLane] = {0.f, 0.f, 0.f, 0.f};
  if (active) {
    float up[kQuantValuesPerLane];
    vec::unpack4(__ldcg(reinterpret_cast<const uint2*>(row + col)), act);
    vec::unpack4(__ldcg(reinterpret_cast<const uint2*>(row + inter + col)), up);
#pragma unroll
    for (int i = 0; i < kQuantValuesPerLane; ++i) act[i] = silu_mul_value(act[i], up[i]);
  }
  return quantize_group_warp(act, active, codes);
}

}  // namespace fp8lm
