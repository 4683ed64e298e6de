// Fast, seeded random data for tests, self-checks and benchmarks (never zeros unless asked).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "fp8lm/gemm.h"
#include "fp8lm/numerics.h"

namespace fp8lm {

// splitmix64: tiny, fast and good enough to fill hundreds of MB of test data.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  double normal() {
    const double u1 = uniform() + 1e-300, u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  std::uint64_t state_;
};

// Random e4m3 codes over the whole finite range (every code but the two NaNs).
inline void fill_fp8(std::vector<fp8_e4m3>& v, Rng& rng) {
  std::size_t i = 0;
  while (i < v.size()) {
    std::uint64_t r = rng.next();
    for (int b = 0; b < 8 && i < v.size(); ++b, r >>= 8) {
      const auto code = static_cast<std::uint8_t>(r & 0xFF);
      if ((code & 0x7F) != 0x7F) v[i++] = fp8_e4m3{code};
    }
  }
}

// Positive scales spread over `decades` orders of magnitude around `center`.
inline void fill_scales(std::vector<float>& v, Rng& rng, double center = 1e-3, double decades = 2.0) {
  for (float& s : v) s = static_cast<float>(center * std::pow(10.0, rng.uniform(-decades / 2, decades / 2)));
}

// A random FP8 blockwise GEMM problem on the host: codes over the whole finite range, scales
// spread over two decades around typical activation (1e-2) and weight (1e-4) values.
struct HostGemmProblem {
  int m = 0, n = 0, k = 0;
  std::vector<fp8_e4m3> a, b;
  std::vector<float> a_scales, b_scales;
  Fp8GemmArgs args(bf16* out) const { return {a.data(), a_scales.data(), b.data(), b_scales.data(), out, m, n, k}; }
};

inline HostGemmProblem random_gemm_problem(int m, int n, int k, Rng& rng, double a_scale_center = 1e-2,
                                           double b_scale_center = 1e-4) {
  const int kb = ceil_div(k, kQuantGroup);
  HostGemmProblem p;
  p.m = m, p.n = n, p.k = k;
  p.a.resize(static_cast<std::size_t>(m) * k);
  p.b.resize(static_cast<std::size_t>(n) * k);
  p.a_scales.resize(static_cast<std::size_t>(m) * kb);
  p.b_scales.resize(static_cast<std::size_t>(ceil_div(n, kQuantGroup)) * kb);
  fill_fp8(p.a, rng);
  fill_fp8(p.b, rng);
  fill_scales(p.a_scales, rng, a_scale_center);
  fill_scales(p.b_scales, rng, b_scale_center);
  return p;
}

}  // namespace fp8lm
