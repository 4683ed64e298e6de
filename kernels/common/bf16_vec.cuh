// bf16 vectors for the memory-bound kernels: 8 bf16 in a 16-byte uint4, 4 in an 8-byte uint2,
// unpacked to fp32 and packed back with round-to-nearest-even (as float_to_bf16 on the host).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace fp8lm::vec {

__device__ __forceinline__ float lo_bf16(std::uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float hi_bf16(std::uint32_t w) { return __uint_as_float(w & 0xffff0000u); }

__device__ __forceinline__ std::uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const std::uint32_t*>(&v);
}

// The value a bf16 tensor would hold: round to bf16 and back.
__device__ __forceinline__ float round_bf16(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

template <int N>  // N / 2 32-bit words -> N floats
__device__ __forceinline__ void unpack(const std::uint32_t* w, float* out) {
#pragma unroll
  for (int i = 0; i < N / 2; ++i) out[2 * i] = lo_bf16(w[i]), out[2 * i + 1] = hi_bf16(w[i]);
}

template <int N>
__device__ __forceinline__ void pack(const float* in, std::uint32_t* w) {
#pragma unroll
  for (int i = 0; i < N / 2; ++i) w[i] = pack_bf16x2(in[2 * i], in[2 * i + 1]);
}

__device__ __forceinline__ void unpack8(const uint4& v, float (&out)[8]) {
  unpack<8>(reinterpret_cast<const std::uint32_t*>(&v), out);
}
__device__ __forceinline__ uint4 pack8(const float (&in)[8]) {
  uint4 v;
  pack<8>(in, reinterpret_cast<std::uint32_t*>(&v));
  return v;
}
__device__ __forceinline__ void unpack4(const uint2& v, float (&out)[4]) {
  unpack<4>(reinterpret_cast<const std::uint32_t*>(&v), out);
}
__device__ __forceinline__ uint2 pack4(const float (&in)[4]) {
  uint2 v;
  pack<4>(in, reinterpret_cast<std::uint32_t*>(&v));
  return v;
}

// Sum over a warp by an xor butterfly (masks 16, 8, 4, 2, 1): every lane ends with the same value,
// and the order is the one the CPU twins reproduce.
__device__ __forceinline__ float warp_butterfly_sum(float v) {
#pragma unroll
  for (int mask = 16; mask > 0; mask >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, mask));
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int mask = 16; mask > 0; mask >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, mask));
  return v;
}

__host__ __device__ __forceinline__ bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace fp8lm::vec
