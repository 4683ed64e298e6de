// The A/B knobs' parsing (kernels/common/knobs.h): a bad setting runs the default and a result
// says so; a misspelt FP8LM_DECODE_FUSION must not leave the default on, or an A/B would measure
// the default twice.
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

TEST(Knobs, IntegerKnobsTakeValuesInRangeElseTheDefault) {
  const IntKnob k{"FP8LM_TEST_KNOB", 1, 8, 3};
  EXPECT_EQ(knob_value_from(k, nullptr), 3);
  EXPECT_EQ(knob_value_from(k, ""), 3);
  EXPECT_EQ(knob_value_from(k, "1"), 1);
  EXPECT_EQ(knob_value_from(k, "8"), 8);
  EXPECT_EQ(knob_value_from(k, "9"), 3);
  EXPECT_EQ(knob_value_from(k, "0"), 3);
  EXPECT_EQ(knob_value_from(k, "4x"), 3);
  EXPECT_EQ(knob_value_from(k, "99999999999999999999"), 3);
  EXPECT_EQ(knob_record(k, "5"), "5");
  EXPECT_EQ(knob_record(k, "64"), "64 (not an integer in [1, 8]: 3 used)");
  EXPECT_EQ(knob_record(k, "four"), "four (not an integer in [1, 8]: 3 used)");
}

TEST(Knobs, EveryIntegerKnobDefaultsInsideItsRange) {
  for (const IntKnob& k : kIntKnobs) {
    EXPECT_LE(k.lo, k.fallback) << k.name;
    EXPECT_LE(k.fallback, k.hi) << k.name;
    EXPECT_EQ(std::string_view(k.name).substr(0, 6), "FP8LM_") << k.name;
  }
}

TEST(Knobs, DecodeFusionNamesRoundTrip) {
  for (const char* text : {"none", "rope", "swiglu", "rope,swiglu"})
    EXPECT_EQ(decode_fusion_names(decode_fusions_from(text)), text);
  EXPECT_EQ(decode_fusion_names(decode_fusions_from("swiglu,rope")), "rope,swiglu");
  EXPECT_EQ(decode_fusion_names(decode_fusions_from("rop")), "none") << "a misspelt name shows as none";
}

}  // namespace
}  // namespace fp8lm
