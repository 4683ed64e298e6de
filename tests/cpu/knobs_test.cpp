// The A/B knobs' parsing (kernels/common/knobs.h): a misspelt FP8LM_DECODE_FUSION must not leave
// the default on, or an A/B would measure the default twice.
#include <gtest/gtest.h>

#include "common/knobs.h"

namespace fp8lm {
namespace {

constexpr unsigned bit(DecodeFusion f) { return static_cast<unsigned>(f); }

TEST(Knobs, DecodeFusionSets) {
  const unsigned all = bit(DecodeFusion::kRope) | bit(DecodeFusion::kSwiglu);
  EXPECT_EQ(decode_fusions_from(nullptr), all);
  EXPECT_EQ(decode_fusions_from(""), all);
  EXPECT_EQ(decode_fusions_from("1"), all);
  EXPECT_EQ(decode_fusions_from("all"), all);
  EXPECT_EQ(decode_fusions_from("0"), 0u);
  EXPECT_EQ(decode_fusions_from("none"), 0u);
  EXPECT_EQ(decode_fusions_from("rope"), bit(DecodeFusion::kRope));
  EXPECT_EQ(decode_fusions_from("swiglu"), bit(DecodeFusion::kSwiglu));
  EXPECT_EQ(decode_fusions_from("swiglu,rope"), all);
  EXPECT_EQ(decode_fusions_from("rope,swigul"), 0u) << "an unknown name turns every fusion off";
  EXPECT_EQ(decode_fusions_from("rope,norm"), 0u) << "norm and router: fusions measured slower and removed";
  EXPECT_EQ(decode_fusions_from("rope,"), 0u) << "an empty name is unknown";
  EXPECT_EQ(decode_fusions_from("2"), 0u);
}

TEST(Knobs, DecodeFusionNamesRoundTrip) {
  for (const char* text : {"none", "rope", "swiglu", "rope,swiglu"})
    EXPECT_EQ(decode_fusion_names(decode_fusions_from(text)), text);
  EXPECT_EQ(decode_fusion_names(decode_fusions_from("swiglu,rope")), "rope,swiglu");
  EXPECT_EQ(decode_fusion_names(decode_fusions_from("rop")), "none") << "a misspelt name shows as none";
}

}  // namespace
}  // namespace fp8lm
