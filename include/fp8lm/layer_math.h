// Scalar math shared by the layer-op kernels and their CPU twins, written so that both compute
// the same bits: only IEEE-rounded fp32 operations (explicitly non-fused on the GPU, where nvcc
// would otherwise contract a*b+c into an fma) and double-precision transcendentals whose result is
// rounded to fp32 (correctly rounded on both sides except in vanishingly rare near-ties).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "fp8lm/numerics.h"

namespace fp8lm::math {

FP8LM_HOST_DEVICE float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
FP8LM_HOST_DEVICE float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
FP8LM_HOST_DEVICE float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
FP8LM_HOST_DEVICE float fma_rn(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
FP8LM_HOST_DEVICE float sqrt_rn(float a) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}
FP8LM_HOST_DEVICE float bits_to_float(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// RMSNorm's scale factor from the sum of squares: 1 / sqrt(sum / dim + eps).
FP8LM_HOST_DEVICE float rms_rsqrt(float sum_squares, int dim, float eps) {
  return div_rn(1.0f, sqrt_rn(add_rn(div_rn(sum_squares, static_cast<float>(dim)), eps)));
}

// exp(x) in fp32 from IEEE operations only (identical bits on CPU and GPU; within ~2 ulp of the
// true value). Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, degree-7 Taylor polynomial for
// e^r (truncation error r^8/8! < 1e-8 relative), then scaling by 2^n. Results below FLT_MIN
// (x < -87.34) flush to 0; x above ln(FLT_MAX) gives +inf.
FP8LM_HOST_DEVICE float exp_f32(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;  // 16 significant bits: n * kLn2Hi is exact
  constexpr float kLn2Lo = 1.42860682030941723212e-6f;
  constexpr float kMaxArg = 88.72283905206835f;  // ln(FLT_MAX)
  constexpr float kMinArg = -87.33654475055310f;  // ln(FLT_MIN)
  if (!(x == x)) return x;  // NaN
  if (x > kMaxArg) return INFINITY;
  if (x < kMinArg) return 0.0f;
  const float n = rintf(mul_rn(x, kLog2e));  // in [-126, 128]
  float r = fma_rn(n, -kLn2Hi, x);
  r = fma_rn(n, -kLn2Lo, r);
  float p = 1.0f / 5040.0f;
  p = fma_rn(p, r, 1.0f / 720.0f);
  p = fma_rn(p, r, 1.0f / 120.0f);
  p = fma_rn(p, r, 1.0f / 24.0f);
  p = fma_rn(p, r, 1.0f / 6.0f);
  p = fma_rn(p, r, 0.5f);
  p = fma_rn(p, r, 1.0f);
  p = fma_rn(p, r, 1.0f);
  const int ni = static_cast<int>(n);
  if (ni > 127) return mul_rn(mul_rn(p, bits_to_float(254u << 23)), 2.0f);  // 2^127 * 2
  return mul_rn(p, bits_to_float(static_cast<std::uint32_t>(ni + 127) << 23));
}

// silu(x) = x / (1 + exp(-x)) in fp32.
FP8LM_HOST_DEVICE float silu_f32(float x) { return div_rn(x, add_rn(1.0f, exp_f32(-x))); }

// RoPE's cos and sin for frequency index i (0 <= i < head_dim / 2) at `position`, as transformers
// computes them: inv_freq = 1 / theta^(2i / head_dim) in fp32, angle = fp32(position * inv_freq),
// cos and sin of the angle in fp32 (here: in double, rounded to fp32). The caller rounds to bf16.
FP8LM_HOST_DEVICE void rope_cos_sin(int position, int i, int head_dim, float theta, float* c, float* s) {
  const float base_pow = static_cast<float>(pow(static_cast<double>(theta), static_cast<double>(2 * i) / head_dim));
  const float inv_freq = div_rn(1.0f, base_pow);
  const double angle = static_cast<double>(mul_rn(static_cast<float>(position), inv_freq));
  *c = static_cast<float>(cos(angle));
  *s = static_cast<float>(sin(angle));
}

}  // namespace fp8lm::math
