// The per-head arithmetic of qk_norm_rope (qk_norm_rope.cu), shared with the flash kernel, which
// applies it itself at decode (AttentionArgs::rope): one code, so both give the same bits.
#pragma once

#include <cstdint>

#include "common/bf16_vec.cuh"
#include "fp8lm/layer_math.h"

namespace fp8lm::qk_rope {

inline constexpr int kHeadDim = 128;
inline constexpr int kHalf = kHeadDim / 2;
inline constexpr int kPerLane = kHeadDim / 32;  // 4 elements: one 8-byte load

// Entry i (< kHalf) of the RoPE table at `pos`: double-precision transcendentals rounded to fp32,
// then to bf16 (transformers computes cos/sin in fp32 and casts them to the activations' dtype).
__device__ __forceinline__ void table_entry(int pos, int i, float theta, float* cos_s, float* sin_s) {
  float c, s;
  math::rope_cos_sin(pos, i, kHeadDim, theta, &c, &s);
  cos_s[i] = vec::round_bf16(c);
  sin_s[i] = vec::round_bf16(s);
}

// One head by one warp: lane l holds elements 4l .. 4l + 3 of the raw head (`raw`) and of the norm
// weights; returns them after the per-head RMSNorm (xor butterfly) and neox RoPE (element i pairs
// with i + 64, i.e. lane l with lane l ^ 16), each step rounded to bf16 as transformers' bf16 ops.
__device__ __forceinline__ uint2 norm_rope(uint2 raw, uint2 weights, const float* cos_s, const float* sin_s, float eps,
                                           int lane) {
  float x[kPerLane], w[kPerLane];
  vec::unpack4(raw, x);
  vec::unpack4(weights, w);
  float partial = 0.0f;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) partial = __fadd_rn(partial, __fmul_rn(x[i], x[i]));
  const float r = math::rms_rsqrt(vec::warp_butterfly_sum(partial), kHeadDim, eps);
  float y[kPerLane], out[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) y[i] = vec::round_bf16(__fmul_rn(w[i], vec::round_bf16(__fmul_rn(x[i], r))));
  const bool low = lane < 16;  // elements < 64: rotate_half gives -x[i + 64]; else x[i - 64]
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const float partner = __shfl_xor_sync(0xffffffffu, y[i], 16);
    const int j = (lane * kPerLane + i) % kHalf;
    const float rotated = low ? -partner : partner;
    out[i] = __fadd_rn(vec::round_bf16(__fmul_rn(y[i], cos_s[j])), vec::round_bf16(__fmul_rn(rotated, sin_s[j])));
  }
  return vec::pack4(out);
}

}  // namespace fp8lm::qk_rope
