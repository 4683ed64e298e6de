// CPU twins of the kernels: same arguments, plain C++ (threads allowed). They are the reference
// the GPU kernels are tested against and the backend that runs models without a GPU.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <span>

#include "fp8lm/gemm.h"
#include "fp8lm/grouped_gemm.h"
#include "fp8lm/numerics.h"
#include "fp8lm/quant.h"
#include "fp8lm/status.h"

namespace fp8lm::cpu {

// The e4m3fn bit layout, shared by the encoder below and the decoder.
namespace e4m3 {
inline constexpr std::uint8_t kSignBit = 0x80;
inline constexpr std::uint8_t kNaN = 0x7F;      // exponent and mantissa all ones
inline constexpr std::uint8_t kMaxCode = 0x7E;  // 448 = 1.75 * 2^8
inline constexpr int kExpBias = 7;
inline constexpr int kMantBits = 3;
inline constexpr float kMinNormal = 0x1.0p-6f;
}  // namespace e4m3

// float -> e4m3fn, round to nearest even, saturating to +-448 (infinities too), NaN -> 0x7F.
// Bit-exact with the GPU's cvt.rn.satfinite.e4m3x2.f32.
//
// Inline integer arithmetic with masks instead of branches, because it runs once per weight when a
// BF16 checkpoint is quantized at load and once per activation in the CPU backend: loops over it
// vectorise (about 9x faster than frexp/ldexp/nearbyint; equal to that formulation on all 2^32
// inputs, checked exhaustively when it was introduced).
inline fp8_e4m3 fp8_encode(float x) {
  constexpr int kDropBits = 23 - e4m3::kMantBits;  // float mantissa bits that rounding removes
  const std::uint32_t u = std::bit_cast<std::uint32_t>(x);
  const std::uint32_t sign = (u >> 24) & e4m3::kSignBit;
  const std::uint32_t a = u & 0x7FFFFFFFu;  // |x|; as an int it orders like |x|, NaNs above +inf
  const auto ia = static_cast<std::int32_t>(a);
  // [2^-6, 448): rebias the exponent (127 -> 7) and round the mantissa to nearest even by adding
  // half an ulp minus one plus the kept lowest bit; a carry out of the mantissa bumps the exponent.
  const std::uint32_t normal =
      (a - (static_cast<std::uint32_t>(127 - e4m3::kExpBias) << 23) + ((1u << (kDropBits - 1)) - 1) +
       ((a >> kDropBits) & 1u)) >> kDropBits;
  // Below 2^-6 the codes are multiples of 2^-9 (0..8; 8 is the smallest normal's code). Adding
  // 2^14, whose ulp is 2^-9, rounds |x| to that grid to nearest even (the FPU's mode, as nearbyint).
  constexpr float kSubnormalGrid = 16384.0f;
  const std::uint32_t subnormal = std::bit_cast<std::uint32_t>(std::bit_cast<float>(a) + kSubnormalGrid) -
                                  std::bit_cast<std::uint32_t>(kSubnormalGrid);
  // All-ones masks select (branches would stop the vectoriser).
  const auto mask = [](bool b) { return 0u - static_cast<std::uint32_t>(b); };
  const std::uint32_t is_sub = mask(ia < std::bit_cast<std::int32_t>(e4m3::kMinNormal));
  const std::uint32_t is_max = mask(ia >= std::bit_cast<std::int32_t>(kFp8Max));  // satfinite, +-inf too
  const std::uint32_t is_nan = mask(ia > std::bit_cast<std::int32_t>(INFINITY));  // one NaN code, no sign
  std::uint32_t code = (subnormal & is_sub) | (normal & ~is_sub);
  code = ((e4m3::kMaxCode & is_max) | (code & ~is_max)) | sign;
  return {static_cast<std::uint8_t>((e4m3::kNaN & is_nan) | (code & ~is_nan))};
}
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
// One block of it: `rows` x `cols` floats (row stride `ld`) -> codes (row stride `out_ld`); returns
// the block's scale. The checkpoint loader quantizes block by block from the mapped file with it.
float quantize_weight_block(const float* w, int rows, int cols, std::size_t ld, fp8_e4m3* out,
                            std::size_t out_ld);

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
