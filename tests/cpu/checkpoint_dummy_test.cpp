// Dummy weights: deterministic per seed, shaped like the config, distributed like an initialised
// model (N(0, 0.02) after dequantization) and quantized like a real FP8 checkpoint.
#include <cmath>
#include <cstring>

#include "checkpoint_test_util.h"
#include "engine/checkpoint/dummy_weights.h"
#include "engine/model/qwen3_footprint.h"
#include "engine/checkpoint/qwen3_tensor_names.h"
#include "fp8lm/cpu.h"

namespace fp8lm {
namespace {

using testing::small_config;

// The bytes of every tensor in `w` (fp32 scales), to check qwen3_footprint against.
std::uint64_t weight_bytes(const Qwen3Weights& w) {
  std::uint64_t bytes = (w.embed_tokens.size() + w.lm_head.size() + w.norm.size()) * 2;
  for (std::size_t i = 0; i < w.layers.size(); ++i) {
    const Qwen3LayerWeights& layer = w.layers[i];
    for (const LayerNormSpec& n : qwen3_layer_norms(w.config)) bytes += (layer.*n.member).size() * 2;
    bytes += layer.moe.router.size() * 2;
    for (const FusedLinearSpec& s : qwen3_layer_linears(w.config, static_cast<int>(i)))
      bytes += s.of(layer).weight.size() + s.of(layer).scales.size() * 4;
  }
  return bytes;
}

TEST(DummyWeights, DeterministicPerSeed) {
  Qwen3Weights a, b, c;
  ASSERT_TRUE(make_dummy_qwen3(small_config(), 11, &a).ok());
  ASSERT_TRUE(make_dummy_qwen3(small_config(), 11, &b).ok());
  ASSERT_TRUE(make_dummy_qwen3(small_config(), 12, &c).ok());
  EXPECT_EQ(std::memcmp(a.embed_tokens.data(), b.embed_tokens.data(), a.embed_tokens.size() * 2), 0);
  EXPECT_EQ(std::memcmp(a.lm_head.data(), b.lm_head.data(), a.lm_head.size() * 2), 0);
  EXPECT_NE(std::memcmp(a.embed_tokens.data(), c.embed_tokens.data(), a.embed_tokens.size() * 2), 0);
  for (std::size_t i = 0; i < a.layers.size(); ++i) {
    EXPECT_EQ(std::memcmp(a.layers[i].qkv.weight.data(), b.layers[i].qkv.weight.data(), a.layers[i].qkv.weight.size()), 0);
    EXPECT_EQ(a.layers[i].down.scales, b.layers[i].down.scales);
    EXPECT_NE(std::memcmp(a.layers[i].qkv.weight.data(), c.layers[i].qkv.weight.data(), a.layers[i].qkv.weight.size()), 0);
  }
  // Different tensors get different streams.
  EXPECT_NE(std::memcmp(a.embed_tokens.data(), a.lm_head.data(), a.lm_head.size() * 2), 0);
}

// A fingerprint of the tiny preset's seed-0 weights: CI's reference logits depend on them, so a
// change here must come with new reference logits.
TEST(DummyWeights, TinyPresetFingerprint) {
  Qwen3Weights w;
  ASSERT_TRUE(make_dummy_qwen3("tiny", 0, &w).ok());
  std::uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](const void* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) h = (h ^ static_cast<const unsigned char*>(p)[i]) * 0x100000001b3ull;
  };
  mix(w.embed_tokens.data(), w.embed_tokens.size() * 2);
  for (std::size_t i = 0; i < w.layers.size(); ++i)
    for (const FusedLinearSpec& spec : qwen3_layer_linears(w.config, static_cast<int>(i))) {
      const Fp8Linear& l = spec.of(w.layers[i]);
      mix(l.weight.data(), l.weight.size());
      mix(l.scales.data(), l.scales.size() * 4);
    }
  EXPECT_EQ(h, 11999847087481537319ull);
}

TEST(DummyWeights, ShapesMatchTheConfig) {
  Qwen3Weights w;
  ASSERT_TRUE(make_dummy_qwen3("tiny", 0, &w).ok());
  const Qwen3Config& c = w.config;
  EXPECT_EQ(w.embed_tokens.size(), 151936u * 256);
  EXPECT_TRUE(w.lm_head.empty());
  ASSERT_EQ(w.layers.size(), 2u);
  const Qwen3LayerWeights& l = w.layers[1];
  EXPECT_EQ(l.qkv.n, 1024);
  EXPECT_EQ(l.qkv.k, 256);
  EXPECT_EQ(l.qkv.scales.size(), 8u * 2);
  EXPECT_EQ(l.o.n, 256);
  EXPECT_EQ(l.o.k, 512);
  EXPECT_EQ(l.gate_up.n, 1536);
  EXPECT_EQ(l.down.k, 768);
  EXPECT_EQ(l.q_norm.size(), 128u);
  EXPECT_EQ(bf16_to_float(l.input_layernorm[3]), 1.0f);
  EXPECT_EQ(bf16_to_float(w.norm[0]), 1.0f);
  EXPECT_EQ(qwen3_footprint(c).weight_bytes, weight_bytes(w));
}

TEST(DummyWeights, DistributedLikeAnInitialisedModel) {
  Qwen3Weights w;
  ASSERT_TRUE(make_dummy_qwen3("tiny", 1, &w).ok());
  double sum = 0, sq = 0;
  for (bf16 v : w.embed_tokens) {
    sum += bf16_to_float(v);
    sq += bf16_to_float(v) * bf16_to_float(v);
  }
  const double n = static_cast<double>(w.embed_tokens.size());
  EXPECT_NEAR(sum / n, 0.0, 1e-4);
  EXPECT_NEAR(std::sqrt(sq / n), 0.02, 0.0005);

  const Fp8Linear& l = w.layers[0].gate_up;
  const int kb = ceil_div(l.k, kQuantGroup);
  sum = sq = 0;
  for (int r = 0; r < l.n; ++r)
    for (int c = 0; c < l.k; ++c) {
      const double v = cpu::fp8_decode(l.weight[static_cast<std::size_t>(r) * l.k + c]) *
                       l.scales[(r / kQuantGroup) * kb + c / kQuantGroup];
      sum += v;
      sq += v * v;
    }
  const double m = static_cast<double>(l.weight.size());
  EXPECT_NEAR(sum / m, 0.0, 2e-4);
  EXPECT_NEAR(std::sqrt(sq / m), 0.02, 0.0005);
  // Quantized like a checkpoint: each block's scale is BF16 and its largest code is near 448.
  for (int nb = 0; nb < ceil_div(l.n, kQuantGroup); ++nb)
    for (int b = 0; b < kb; ++b) {
      const float s = l.scales[nb * kb + b];
      EXPECT_EQ(bf16_to_float(float_to_bf16(s)), s);
      EXPECT_GT(s, 0.02f * 3.5f / 448) << nb << "," << b;
      EXPECT_LT(s, 0.02f * 4.6f / 448) << nb << "," << b;
      float amax = 0;
      for (int r = nb * kQuantGroup; r < (nb + 1) * kQuantGroup; ++r)
        for (int c = b * kQuantGroup; c < (b + 1) * kQuantGroup; ++c)
          amax = std::max(amax, std::fabs(cpu::fp8_decode(l.weight[static_cast<std::size_t>(r) * l.k + c])));
      EXPECT_GE(amax, 416.0f);
    }
}

TEST(DummyWeights, TinyMoeShapes) {
  Qwen3Weights w;
  ASSERT_TRUE(make_dummy_qwen3("tiny-moe", 0, &w).ok());
  const Qwen3Config& c = w.config;
  EXPECT_EQ(c.model_type, "qwen3_moe");
  ASSERT_EQ(w.layers.size(), 2u);
  for (const Qwen3LayerWeights& l : w.layers) {
    EXPECT_TRUE(l.gate_up.weight.empty());
    EXPECT_EQ(l.moe.router.size(), 8u * 256);
    ASSERT_EQ(l.moe.experts.size(), 8u);
    EXPECT_EQ(l.moe.experts[7].gate_up.n, 512);
    EXPECT_EQ(l.moe.experts[7].gate_up.k, 256);
    EXPECT_EQ(l.moe.experts[7].down.n, 256);
    EXPECT_EQ(l.moe.experts[7].down.k, 256);
  }
  // Experts and router rows are distinct draws.
  const auto& e0 = w.layers[0].moe.experts[0].down.weight;
  const auto& e1 = w.layers[0].moe.experts[1].down.weight;
  EXPECT_NE(std::memcmp(e0.data(), e1.data(), e0.size()), 0);
  EXPECT_NE(std::memcmp(w.layers[0].moe.router.data(), w.layers[0].moe.router.data() + 256, 512), 0);
}

TEST(DummyWeights, MlpOnlyLayersAndSparseStepKeepDenseMlps) {
  Qwen3Config c;
  ASSERT_TRUE(qwen3_preset("tiny-moe", &c).ok());
  c.num_hidden_layers = 4;
  c.decoder_sparse_step = 2;  // layers 1 and 3 sparse
  c.mlp_only_layers = {3};    // ... but not 3
  Qwen3Weights w;
  ASSERT_TRUE(make_dummy_qwen3(c, 0, &w).ok());
  for (int i = 0; i < 4; ++i) {
    const bool sparse = i == 1;
    EXPECT_EQ(c.is_moe_layer(i), sparse) << i;
    EXPECT_EQ(w.layers[i].moe.experts.size(), sparse ? 8u : 0u) << i;
    EXPECT_EQ(w.layers[i].gate_up.n, sparse ? 0 : 1536) << i;
  }
  EXPECT_EQ(qwen3_footprint(c).weight_bytes, weight_bytes(w));
}

TEST(DummyWeights, UnknownModelTypeAndPreset) {
  Qwen3Weights w;
  w.config.model_type = "sentinel";
  Qwen3Config c;
  ASSERT_TRUE(qwen3_preset("tiny", &c).ok());
  c.model_type = "llama";
  EXPECT_ERROR_HAS(make_dummy_qwen3(c, 0, &w), "llama", "not supported");
  EXPECT_EQ(w.config.model_type, "sentinel");
  EXPECT_ERROR_HAS(make_dummy_qwen3("nope", 0, &w), "unknown preset");
}

}  // namespace
}  // namespace fp8lm
