// FP8 conversions on the GPU: one cvt.rn.satfinite.e4m3x2.f32 per pair of values. The CPU twin is
// cpu::fp8_encode; tests/gpu/codec_gpu_test.cu checks they agree bit for bit.
#pragma once

#include <cuda_fp8.h>

#include <cstdint>

namespace fp8lm {

// Two floats -> two e4m3 codes, `lo` in the low byte (lower address when stored).
__device__ __forceinline__ std::uint16_t fp8x2_encode(float lo, float hi) {
  return __nv_cvt_float2_to_fp8x2(make_float2(lo, hi), __NV_SATFINITE, __NV_E4M3);
}

}  // namespace fp8lm
