// Number formats shared by the CPU twins and the CUDA kernels.
//
// FP8 is float8_e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities; the only NaN
// codes are 0x7F and 0xFF; the largest finite value is 448. Quantization rounds to nearest even and
// saturates to +-448 (NaN stays NaN), as `cvt.rn.satfinite.e4m3x2.f32` does on the GPU.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define FP8LM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FP8LM_HOST_DEVICE inline
#endif

namespace fp8lm {

// One FP8 e4m3fn value, by its bit pattern (layout-compatible with CUDA's __nv_fp8_e4m3).
struct fp8_e4m3 {
  std::uint8_t bits;
};
// One bfloat16 value, by its bit pattern (layout-compatible with CUDA's __nv_bfloat16).
struct bf16 {
  std::uint16_t bits;
};
static_assert(sizeof(fp8_e4m3) == 1 && sizeof(bf16) == 2);

inline constexpr float kFp8Max = 448.0f;
// Quantization groups: activations get one scale per token per kQuantGroup channels (1x128),
// weights one per kQuantGroup x kQuantGroup block (128x128), as in the Qwen3-FP8 checkpoints.
inline constexpr int kQuantGroup = 128;
// A group whose amax is below this is scaled as if its amax were this, so an all-zero group gets
// a finite, non-zero scale (its values quantize to 0) and nothing ever divides by zero.
inline constexpr float kAmaxFloor = 1e-10f;

FP8LM_HOST_DEVICE constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }

// The per-group scale: value = fp8 * scale, with fp8 = value / scale saturating at 448.
FP8LM_HOST_DEVICE float scale_from_amax(float amax) {
  return (amax > kAmaxFloor ? amax : kAmaxFloor) / kFp8Max;
}

inline float bf16_to_float(bf16 v) {
  std::uint32_t u = static_cast<std::uint32_t>(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Round to nearest even; NaN stays a (quiet) NaN of the same sign.
inline bf16 float_to_bf16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<std::uint16_t>((u >> 16) | 0x40u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{static_cast<std::uint16_t>(u >> 16)};
}

// The value a bf16 tensor would hold: round to bf16 (nearest even) and back. (Device code:
// vec::round_bf16 in kernels/common/bf16_vec.cuh, the same bits.)
inline float round_bf16(float v) { return bf16_to_float(float_to_bf16(v)); }

}  // namespace fp8lm
