#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "bench/device_kernels.h"
#include "fp8lm/cuda_status.h"

namespace fp8lm::bench {

namespace {

__device__ __forceinline__ std::uint64_t hash64(std::uint64_t x) {  // splitmix64 finalizer
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

__device__ __forceinline__ float uniform01(std::uint64_t h) { return static_cast<float>(h >> 40) * 0x1.0p-24f; }

__global__ void fp8_kernel(std::uint8_t* p, std::size_t n, std::uint64_t seed) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    std::uint8_t c = static_cast<std::uint8_t>(hash64(seed ^ i));
    if ((c & 0x7F) == 0x7F) c ^= 0x01;  // no NaN codes
    p[i] = c;
  }
}

__global__ void bf16_kernel(__nv_bfloat16* p, std::size_t n, std::uint64_t seed, float stddev) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::uint64_t h = hash64(seed ^ i);
    // Sum of 4 uniforms: close enough to normal for timing data, and never all zeros.
    const float s = uniform01(h) + uniform01(h << 16) + uniform01(h << 32) + uniform01(hash64(h));
    p[i] = __float2bfloat16((s - 2.0f) * 1.7320508f * stddev);
  }
}

__global__ void scales_kernel(float* p, std::size_t n, std::uint64_t seed, float lo, float hi) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    p[i] = lo + (hi - lo) * uniform01(hash64(seed ^ i));
}

__global__ void copy_kernel(uint4* __restrict__ dst, const uint4* __restrict__ src, std::size_t n) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  // Four independent 16-byte loads in flight per thread before the stores.
  for (; i + 3 * stride < n; i += 4 * stride) {
    const uint4 a = src[i], b = src[i + stride], c = src[i + 2 * stride], d = src[i + 3 * stride];
    dst[i] = a, dst[i + stride] = b, dst[i + 2 * stride] = c, dst[i + 3 * stride] = d;
  }
  for (; i < n; i += stride) dst[i] = src[i];
}

constexpr int kThreads = 256;
unsigned blocks_for(std::size_t n) { return static_cast<unsigned>(std::min<std::size_t>((n + kThreads - 1) / kThreads, 65536)); }

}  // namespace

Status fill_random_fp8(fp8_e4m3* p, std::size_t count, std::uint64_t seed, cudaStream_t stream) {
  if (count == 0) return Status::Ok();
  fp8_kernel<<<blocks_for(count), kThreads, 0, stream>>>(reinterpret_cast<std::uint8_t*>(p), count, seed);
  return cuda_status(cudaGetLastError(), "fill_random_fp8");
}

Status fill_random_bf16(bf16* p, std::size_t count, std::uint64_t seed, float stddev, cudaStream_t stream) {
  if (count == 0) return Status::Ok();
  bf16_kernel<<<blocks_for(count), kThreads, 0, stream>>>(reinterpret_cast<__nv_bfloat16*>(p), count, seed, stddev);
  return cuda_status(cudaGetLastError(), "fill_random_bf16");
}

Status fill_random_scales(float* p, std::size_t count, std::uint64_t seed, float lo, float hi, cudaStream_t stream) {
  if (count == 0) return Status::Ok();
  scales_kernel<<<blocks_for(count), kThreads, 0, stream>>>(p, count, seed, lo, hi);
  return cuda_status(cudaGetLastError(), "fill_random_scales");
}

Status copy_bytes(void* dst, const void* src, std::size_t bytes, cudaStream_t stream) {
  if (bytes % 16 != 0) return Status::Error("copy_bytes: size must be a multiple of 16");
  int sms = 0, device = 0;
  FP8LM_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  FP8LM_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  copy_kernel<<<sms * 8, kThreads, 0, stream>>>(static_cast<uint4*>(dst), static_cast<const uint4*>(src), bytes / 16);
  return cuda_status(cudaGetLastError(), "copy_bytes");
}

}  // namespace fp8lm::bench
