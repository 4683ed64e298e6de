// Bit-for-bit comparison of two result vectors for the tests of fused and twin ops (CPU and GPU):
// stops at the first differing element and names it (bf16 and float elements with their values).
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "fp8lm/numerics.h"

namespace fp8lm::testing {

template <typename T>
void expect_same_bits(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(T)) == 0) continue;
    if constexpr (std::is_same_v<T, bf16>) {
      FAIL() << what << " differs at element " << i << ": got " << bf16_to_float(got[i]) << ", want "
             << bf16_to_float(want[i]);
    } else if constexpr (std::is_floating_point_v<T>) {
      FAIL() << what << " differs at element " << i << ": got " << got[i] << ", want " << want[i];
    } else {
      FAIL() << what << " differs at element " << i;
    }
  }
}

// The same bits, or NaN on both sides (whatever the sign and payload: the GPU's conversions give
// the canonical NaN, the host's keep the operand's).
template <typename T>
void expect_same_values(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  auto is_nan = [](T v) {
    if constexpr (std::is_same_v<T, bf16>) {
      const float f = bf16_to_float(v);
      return f != f;
    } else {
      return v != v;
    }
  };
  std::vector<T> g = got, w = want;
  for (std::size_t i = 0; i < w.size(); ++i)
    if (is_nan(g[i]) && is_nan(w[i])) g[i] = w[i];
  expect_same_bits(g, w, what);
}

}  // namespace fp8lm::testing
