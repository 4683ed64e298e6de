// Random device data for benchmarks, generated on the GPU (gigabytes would take seconds to upload).
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

}  // namespace fp8lm::bench
