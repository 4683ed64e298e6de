// Fast, seeded random data for tests, self-checks and benchmarks (never zeros unless asked).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

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

}  // namespace fp8lm
