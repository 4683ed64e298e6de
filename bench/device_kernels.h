// Benchmark helpers on the GPU: random data (gigabytes would take seconds to upload) and the copy
// kernel that measures memory bandwidth.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "fp8lm/numerics.h"
#include "fp8lm/status.h"

namespace fp8lm::bench {

// FP8 codes uniformly over every finite code (never NaN).
Status fill_random_fp8(fp8_e4m3* p, std::size_t count, std::uint64_t seed, cudaStream_t stream);
// bf16 values roughly normal with standard deviation `stddev`.
Status fill_random_bf16(bf16* p, std::size_t count, std::uint64_t seed, float stddev, cudaStream_t stream);
// Positive fp32 scales in [lo, hi).
Status fill_random_scales(float* p, std::size_t count, std::uint64_t seed, float lo, float hi, cudaStream_t stream);

// dst <- src with 16-byte loads and stores from every SM: the copy bandwidth the floors use.
// bytes must be a multiple of 16 and both pointers 16-byte aligned.
Status copy_bytes(void* dst, const void* src, std::size_t bytes, cudaStream_t stream);

}  // namespace fp8lm::bench
