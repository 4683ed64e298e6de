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

}  // namespace fp8lm::testing
