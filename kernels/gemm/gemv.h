// FP8 blockwise GEMM for a few tokens (gemv.cu): latency-bound decode GEMMs on sm_89 and sm_90,
// dense and grouped, weights loaded straight into mma fragments.
#pragma once

#include <cuda_runtime_api.h>

#include <span>

#include "fp8lm/gemm.h"
#include "fp8lm/grouped_gemm.h"

namespace fp8lm::gemv {

// The configuration compiled in (kernel == GemmKernel::kGemv): block_m = tokens per CTA, block_n =
// weight rows per CTA, stages = k-blocks each lane keeps in flight.
std::span<const GemmConfig> configs();

// The most rows (grouped: of one expert) it takes; more are refused (gemm_config_takes_rows).
inline constexpr int kMaxRows = 16;

// Launches on validated arguments with 1 <= m <= kMaxRows (grid y covers the tokens 8 at a time).
Status launch(const Fp8GemmArgs& args, const GemmConfig& config, cudaStream_t stream);

// Launches on validated grouped arguments with total_rows >= 1 and max_rows_per_expert <= kMaxRows.
Status launch_grouped(const Fp8GroupedGemmArgs& args, const GemmConfig& config, cudaStream_t stream);

}  // namespace fp8lm::gemv
