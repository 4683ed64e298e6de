// CPU twins of the kernels: same arguments, plain C++ (threads allowed). They are the reference
// the GPU kernels are tested against and the backend that runs models without a GPU.
#pragma once

#include <cstdint>
#include <span>

#include "fp8lm/gemm.h"
#include "fp8lm/grouped_gemm.h"
#include "fp8lm/numerics.h"
#include "fp8lm/quant.h"
#include "fp8lm/status.h"

namespace fp8lm::cpu {

// float -> e4m3fn, round to nearest even, saturating to +-448 (infinities too), NaN -> 0x7F.
// Bit-exact with the GPU's cvt.rn.satfinite.e4m3x2.f32.
fp8_e4m3 fp8_encode(float x);
// e4m3fn -> float (exact).
float fp8_decode(fp8_e4m3 v);

// Twin of fp8lm::quantize_per_token_group (bit-exact).
Status quantize_per_token_group(const QuantizeArgs& args);
// Its arithmetic on one row of k values (each a bf16 value as a float), shared with the twins that
// fuse the quantizer into another op: out [k] codes, scales [ceil(k/128)].
void quantize_row(const float* values, int k, fp8_e4m3* out, float* scales);

// Weight quantization: float [n, k] -> FP8 [n, k] + scales [ceil(n/128), ceil(k/128)], one scale
// per 128x128 block (ragged edge blocks are smaller), scale = max(amax, floor) / 448.
Status quantize_weight_blockwise(const float* w, int n, int k, fp8_e4m3* out, float* scales);

// Twin of fp8lm::gemm_fp8_blockwise: fp32 per-128-k partial sums promoted with the two scales,
// bf16 output, multi-threaded (threads <= 0: all hardware threads).
Status gemm_fp8_blockwise(const Fp8GemmArgs& args, int threads = 0);

// Twin of fp8lm::gemm_fp8_grouped: gemm_fp8_blockwise on each expert's rows. offsets is host
// memory here, so its contract is checked too (validate_grouped_offsets).
Status gemm_fp8_grouped(const Fp8GroupedGemmArgs& args, int threads = 0);

// The oracle: dequantize each FP8 input and accumulate in fp64 (args.out is not used), for the rows in
// `rows` only (all rows when empty). out: [rows.size() (or m), n] row-major doubles.
// abs_out (optional, same shape): sum_k |a|*|b| per element, the scale of rounding error.
Status gemm_fp8_blockwise_oracle(const Fp8GemmArgs& args, std::span<const int> rows, double* out,
                                 double* abs_out = nullptr);

}  // namespace fp8lm::cpu
