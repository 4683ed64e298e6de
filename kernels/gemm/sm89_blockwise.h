// The SM89 FP8 blockwise GEMM (mma.sync m16n8k32 e4m3, cp.async pipeline). Native on Ada (sm_89);
// on Hopper the same source is compiled for sm_90a, where FP8 mma.sync runs correctly but emulated.
#pragma once

#include <cuda_runtime_api.h>

#include <span>

#include "fp8lm/device.h"
#include "fp8lm/gemm.h"
#include "fp8lm/grouped_gemm.h"

namespace fp8lm::sm89 {

// The tile configurations compiled in (kernel == GemmKernel::kSm89Mma).
std::span<const GemmConfig> configs();

// Launches `config` (one of configs()) on validated arguments with m >= 1.
Status launch(const Fp8GemmArgs& args, const GemmConfig& config, const DeviceInfo& device,
              cudaStream_t stream);

// Launches `config` on validated grouped arguments with total_rows >= 1: grid (tiles of
// min(max_rows_per_expert, total_rows) rows, num_experts), each expert's CTAs run launch's tiles.
Status launch_grouped(const Fp8GroupedGemmArgs& args, const GemmConfig& config, const DeviceInfo& device,
                      cudaStream_t stream);

}  // namespace fp8lm::sm89
