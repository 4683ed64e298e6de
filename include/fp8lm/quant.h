// Activation quantization: bf16 [m, k] -> FP8 e4m3 [m, k] with one fp32 scale per token per 128
// channels, scales [m, ceil(k/128)] row-major; scale = max(amax, kAmaxFloor) / 448 and
// fp8 = rn_satfinite(x / scale). A ragged last group (k % 128 != 0) has its own scale.
#pragma once

#include <cuda_runtime_api.h>

#include "fp8lm/numerics.h"
#include "fp8lm/status.h"

namespace fp8lm {

struct QuantizeArgs {
  const bf16* in;   // [m, k] row-major (with rows: [in_rows, k])
  fp8_e4m3* out;    // [m, k] row-major
  float* scales;    // [m, ceil(k/128)] row-major
  int m;
  int k;            // multiple of 16 (16-byte vector loads on the GPU)
  // Optional gather (MoE: the normed token rows in expert order, straight into the grouped GEMM's
  // input): output row r quantizes input row rows[r], which must be in [0, in_rows). The CPU twin
  // refuses other indices; the kernel, which cannot report them, quantizes a row of NaN instead.
  const std::int32_t* rows = nullptr;  // [m], device memory on the GPU
  int in_rows = 0;
};

// Checks pointers and sizes; the GPU launcher and the CPU twin both call it.
Status validate(const QuantizeArgs& args);

// GPU: one warp per 128-channel group. m == 0 is a no-op.
Status quantize_per_token_group(const QuantizeArgs& args, cudaStream_t stream);

}  // namespace fp8lm
