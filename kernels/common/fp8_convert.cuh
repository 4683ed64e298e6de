// FP8 conversions on the GPU: one cvt.rn.satfinite.e4m3x2.f32 per pair of values to encode (the
// CPU twin is cpu::fp8_encode; tests/gpu/codec_gpu_test.cu checks they agree bit for bit), one
// cvt.rn.f16x2.e4m3x2 per pair to decode.
#pragma once

#include <cuda_fp8.h>

#include <cstdint>

namespace fp8lm {

// Two floats -> two e4m3 codes, `lo` in the low byte (lower address when stored).
__device__ __forceinline__ std::uint16_t fp8x2_encode(float lo, float hi) {
  return __nv_cvt_float2_to_fp8x2(make_float2(lo, hi), __NV_SATFINITE, __NV_E4M3);
}

// Two e4m3 codes (the low 16 bits of `w`) -> an fp16x2 word (the lower code in the low half),
// exactly: every e4m3 value is an fp16 value.
__device__ __forceinline__ std::uint32_t fp8x2_to_f16x2(std::uint32_t w) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(w & 0xffffu), __NV_E4M3);
  return static_cast<std::uint32_t>(h.x) | (static_cast<std::uint32_t>(h.y) << 16);
}

}  // namespace fp8lm
