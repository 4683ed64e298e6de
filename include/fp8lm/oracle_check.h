// Comparing a bf16 GEMM output with the fp64 oracle.
//
// Bounds (why they are what they are):
//  - elementwise: |out - ref| <= 2^-8 |ref| + 2^-14 * sum_k |a_k b_k|.
//    2^-8 is half a bf16 ulp relative to the value (8 significant bits): the output rounding.
//    The second term covers fp32 accumulation, whose error grows with the size of the summed
//    terms, not of the (possibly cancelled) result; 2^-14 is ~1000x fp32's unit roundoff, room for
//    ~sqrt(k) growth up to k = 25600. A lost or doubled 128-k block (128 of the k terms, about
//    0.5% of sum |a b| even at k = 25600) is far outside it.
//    Hopper FP8 wgmma (our sm90 kernels, and cuBLASLt's FP8 GEMMs on Hopper) adds the products
//    of one instruction inside the tensor core with only ~14 significant bits (DeepSeek-V3 report,
//    3.3.2: "retaining around 14 bits"); the kernels promote into fp32 every 128 k, so the error
//    is a few 2^-14 of sum |a b| (worst seen on an H200 over the dense Qwen3 test shapes: 2^-12.8;
//    over the grouped ones 2^-10.9: one element of the 30B-A3B expert down, k = 768, prefill
//    routing, where every sm90 configuration gave the same bf16 value, 1.01x over the old 2^-11
//    bound: bench/results/gpu-tests-2026-11-28-nvidia-h200-gemv-adccc23.log). For those kernels
//    the second term is 2^-10 (kAccumTolWgmmaFp8): 1.9x over the worst seen, and still 5x under a
//    lost or doubled 128-k block at k = 25600.
//  - relative Frobenius error ||out - ref|| / ||ref|| <= 2^-8: the same rounding bound in norm;
//    honest outputs land near 1.6e-3 (the RMS of bf16 rounding), reported by the tests.
//  - every element of the whole output must be finite: the output is poisoned with NaN first, so a
//    NaN is an unwritten element.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <sstream>
#include <string>

#include "fp8lm/numerics.h"

namespace fp8lm {

struct OracleCheck {
  double rel_frobenius = 0;
  long long out_of_bound = 0;  // elements (of the checked rows) beyond the elementwise bound
  long long non_finite = 0;    // NaN/inf anywhere in the output (unwritten or overflowed)
  std::string first_problem;

  bool ok() const { return out_of_bound == 0 && non_finite == 0 && rel_frobenius <= 0x1.0p-8; }
};

// The accumulation term of the elementwise bound (see above).
inline constexpr double kAccumTolFp32 = 0x1.0p-14;
inline constexpr double kAccumTolWgmmaFp8 = 0x1.0p-10;

// out: the whole [m, n] output; ref/abs_ref: [rows.size(), n] from cpu::gemm_fp8_blockwise_oracle.
inline OracleCheck check_against_oracle(std::span<const bf16> out, int m, int n, std::span<const int> rows,
                                        const double* ref, const double* abs_ref,
                                        double accum_tol = kAccumTolFp32) {
  OracleCheck r;
  for (std::size_t i = 0; i < static_cast<std::size_t>(m) * n; ++i) {
    if (!std::isfinite(bf16_to_float(out[i]))) {
      if (r.non_finite++ == 0) {
        std::ostringstream s;
        s << "non-finite output at (" << i / n << ", " << i % n << ")";
        r.first_problem = s.str();
      }
    }
  }
  double err2 = 0, ref2 = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    for (int col = 0; col < n; ++col) {
      const double want = ref[i * n + col];
      const double got = bf16_to_float(out[static_cast<std::size_t>(rows[i]) * n + col]);
      const double err = std::fabs(got - want);
      err2 += err * err;
      ref2 += want * want;
      const double bound = 0x1.0p-8 * std::fabs(want) + accum_tol * abs_ref[i * n + col];
      if (!(err <= bound) && r.out_of_bound++ == 0 && r.first_problem.empty()) {
        std::ostringstream s;
        s << "out[" << rows[i] << ", " << col << "] = " << got << ", oracle " << want << ", bound " << bound;
        r.first_problem = s.str();
      }
    }
  }
  r.rel_frobenius = ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
  return r;
}

}  // namespace fp8lm
