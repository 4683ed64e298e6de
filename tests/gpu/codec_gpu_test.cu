// The GPU FP8 conversion (the one the kernels use) against the CPU codec, bit for bit: every bf16
// value, random float bit patterns, and the decode of all 256 codes.
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "common/fp8_convert.cuh"
#include "fp8lm/random.h"
#include "fp8lm/cpu.h"
#include "fp8lm/device_buffer.h"

namespace fp8lm {
namespace {

__global__ void encode_kernel(const float* in, std::uint16_t* out, int pairs) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < pairs) out[i] = fp8x2_encode(in[2 * i], in[2 * i + 1]);
}

__global__ void decode_kernel(const __nv_fp8_e4m3* in, float* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = static_cast<float>(in[i]);
}

std::vector<std::uint8_t> gpu_encode(const std::vector<float>& values) {
  DeviceBuffer<float> in(values);
  DeviceBuffer<std::uint16_t> out(values.size() / 2);
  out.fill_bytes(0xAB);
  const int pairs = static_cast<int>(values.size() / 2);
  encode_kernel<<<(pairs + 255) / 256, 256>>>(in.get(), out.get(), pairs);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<std::uint16_t> packed = out.download();
  std::vector<std::uint8_t> codes(values.size());
  std::memcpy(codes.data(), packed.data(), codes.size());  // low byte first: element 2i
  return codes;
}

void expect_bit_exact(const std::vector<float>& values) {
  const std::vector<std::uint8_t> gpu = gpu_encode(values);
  int mismatches = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::uint8_t cpu_code = cpu::fp8_encode(values[i]).bits;
    if (gpu[i] != cpu_code && mismatches++ < 10)
      ADD_FAILURE() << "value " << values[i] << ": GPU " << int(gpu[i]) << " CPU " << int(cpu_code);
  }
  EXPECT_EQ(mismatches, 0) << "of " << values.size();
}

TEST(Fp8GpuCodec, EncodeEveryBf16BitExact) {
  std::vector<float> values(65536);
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const std::uint32_t u = b << 16;
    std::memcpy(&values[b], &u, 4);
  }
  expect_bit_exact(values);  // includes +-inf, NaNs, zeros, subnormals
}

TEST(Fp8GpuCodec, EncodeRandomFloatsBitExact) {
  Rng rng(99);
  std::vector<float> values(1 << 22);
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i % 2) {
      const auto u = static_cast<std::uint32_t>(rng.next());
      std::memcpy(&values[i], &u, 4);
    } else {
      values[i] = static_cast<float>(rng.normal() * std::pow(2.0, rng.uniform(-12, 10)));
    }
  }
  expect_bit_exact(values);
}

TEST(Fp8GpuCodec, DecodeAllCodes) {
  std::vector<__nv_fp8_e4m3> codes(256);
  for (int c = 0; c < 256; ++c) codes[c].__x = static_cast<__nv_fp8_storage_t>(c);
  DeviceBuffer<__nv_fp8_e4m3> in(codes);
  DeviceBuffer<float> out(256);
  decode_kernel<<<1, 256>>>(in.get(), out.get(), 256);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<float> gpu = out.download();
  for (int c = 0; c < 256; ++c) {
    const float cpu_value = cpu::fp8_decode(fp8_e4m3{static_cast<std::uint8_t>(c)});
    if (std::isnan(cpu_value)) {
      EXPECT_TRUE(std::isnan(gpu[c])) << c;
    } else {
      EXPECT_EQ(std::memcmp(&gpu[c], &cpu_value, 4), 0) << "code " << c << ": GPU " << gpu[c] << " CPU " << cpu_value;
    }
  }
}

}  // namespace
}  // namespace fp8lm
