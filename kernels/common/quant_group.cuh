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

// A whole group whose 128 values lie in memory (an attention head's outputs in shared memory),
// quantized by the calling warp (lane l takes values 4l..4l+3): its codes into q8[0..127], its
// scale into *scale.
__device__ __forceinline__ void quantize_group_from(const float* values, fp8_e4m3* q8, float* scale, int lane) {
  const float v[kQuantValuesPerLane] = {values[4 * lane], values[4 * lane + 1], values[4 * lane + 2],
                                        values[4 * lane + 3]};
  const float s = quantize_group_warp(v, true, reinterpret_cast<std::uint32_t*>(q8) + lane);
  if (lane == 0) *scale = s;
}

// The "one warp per (row, 128-channel group)" layout of quantize_per_token_group and
// silu_mul_quantize over a [rows, k] tensor: warp w of CTA b takes group b * kWarps + w of the
// row-major [rows, ceil(k / 128)] grid of groups.
struct QuantGroupLane {
  int row, group;
  int groups;   // groups per row: the scales' row stride
  int lane;
  int col;      // the first of the lane's kQuantValuesPerLane channels
  bool active;  // col < k; k % 16 == 0, so a lane's 4 values are all in or all out
};

// False for the whole warp when its group is past the last one (the grid's last CTA); the caller
// returns then, before quantize_group_warp's shuffles.
template <int kWarps>
__device__ __forceinline__ bool quant_group_lane(int rows, int k, QuantGroupLane& at) {
  at.groups = ceil_div(k, kQuantGroup);
  const long long group_id = static_cast<long long>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (group_id >= static_cast<long long>(rows) * at.groups) return false;
  at.lane = threadIdx.x % 32;
  at.row = static_cast<int>(group_id / at.groups);
  at.group = static_cast<int>(group_id % at.groups);
  at.col = at.group * kQuantGroup + at.lane * kQuantValuesPerLane;
  at.active = at.col < k;
  return true;
}

// The CTAs that layout needs for a [rows, k] tensor (may exceed a grid's 2^31 - 1: callers check).
inline long long quant_group_blocks(int rows, int k, int warps_per_block) {
  const long long warps = static_cast<long long>(rows) * ceil_div(k, kQuantGroup);
  return (warps + warps_per_block - 1) / warps_per_block;
}

}  // namespace fp8lm
