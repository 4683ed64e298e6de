// Dummy weights (engine/checkpoint/dummy_weights.h) of a preset's shapes with fewer layers: the
// engine tests that need a real model's widths but not its depth.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "engine/checkpoint/dummy_weights.h"
#include "engine/checkpoint/qwen3_presets.h"

namespace fp8lm::testing {

inline Qwen3Weights few_layer_dummy(const std::string& preset, int layers) {
  Qwen3Config c;
  EXPECT_TRUE(qwen3_preset(preset, &c).ok()) << preset;
  c.num_hidden_layers = layers;
  Qwen3Weights w;
  EXPECT_TRUE(make_dummy_qwen3(c, 0, &w).ok()) << preset;
  return w;
}

}  // namespace fp8lm::testing
