// config.json / generation_config.json parsing and the built-in presets.
#include <tuple>

#include "checkpoint_test_util.h"
#include "engine/checkpoint/qwen3_config_json.h"
#include "engine/checkpoint/qwen3_presets.h"

namespace fp8lm {
namespace {

using nlohmann::json;

json preset_json(const std::string& preset) {
  Qwen3Config c;
  EXPECT_TRUE(qwen3_preset(preset, &c).ok());
  return json::parse(qwen3_config_to_json(c).dump());
}

Status parse(const json& j, Qwen3Config* c) { return parse_qwen3_config(j, "dir/config.json", c); }

// layers, hidden, q heads, kv heads, head_dim, intermediate, vocab, tied.
using Dims = std::tuple<int, int, int, int, int, int, int, bool>;
Dims dims(const Qwen3Config& c) {
  return {c.num_hidden_layers, c.hidden_size,       c.num_attention_heads, c.num_key_value_heads,
          c.head_dim,          c.intermediate_size, c.vocab_size,          c.tie_word_embeddings};
}

TEST(Qwen3Config, OfficialFieldsRoundTrip) {
  Qwen3Config c;
  ASSERT_TRUE(parse(preset_json("qwen3-8b"), &c).ok());
  EXPECT_EQ(c.model_type, "qwen3");
  EXPECT_EQ(dims(c), Dims(36, 4096, 32, 8, 128, 12288, 151936, false));
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.max_position_embeddings, 40960);
  EXPECT_TRUE(c.fp8);
  EXPECT_EQ(c.qkv_width(), 6144);
}

TEST(Qwen3Config, NoQuantizationConfigIsBf16) {
  json j = preset_json("qwen3-0.6b");
  j.erase("quantization_config");
  Qwen3Config c;
  ASSERT_TRUE(parse(j, &c).ok());
  EXPECT_FALSE(c.fp8);
  EXPECT_TRUE(c.tie_word_embeddings);
}

TEST(Qwen3Config, MissingField) {
  json j = preset_json("tiny");
  j.erase("hidden_size");
  Qwen3Config c;
  c.model_type = "untouched";
  EXPECT_ERROR_HAS(parse(j, &c), "dir/config.json", "missing field \"hidden_size\"", "integer");
  EXPECT_EQ(c.model_type, "untouched");
}

TEST(Qwen3Config, IllTypedField) {
  json j = preset_json("tiny");
  j["num_hidden_layers"] = "2";
  Qwen3Config c;
  EXPECT_ERROR_HAS(parse(j, &c), "dir/config.json", "\"num_hidden_layers\" must be an integer, got string");
  j = preset_json("tiny");
  j["rms_norm_eps"] = true;
  EXPECT_ERROR_HAS(parse(j, &c), "\"rms_norm_eps\" must be a number");
  j = preset_json("tiny");
  j["num_attention_heads"] = 0;
  EXPECT_ERROR_HAS(parse(j, &c), "\"num_attention_heads\" = 0 must be >= 1");
  j = preset_json("tiny");
  j["num_key_value_heads"] = 3;
  EXPECT_ERROR_HAS(parse(j, &c), "not a multiple of num_key_value_heads 3");
}

TEST(Qwen3Config, UnsupportedModelType) {
  json j = preset_json("tiny");
  j["model_type"] = "llama";
  Qwen3Config c;
  EXPECT_ERROR_HAS(parse(j, &c), "dir/config.json", "unsupported model_type \"llama\"");
}

TEST(Qwen3Config, UnsupportedArchitectureFeatures) {
  Qwen3Config c;
  json j = preset_json("tiny");
  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}};
  EXPECT_ERROR_HAS(parse(j, &c), "rope_scaling", "not supported");
  j = preset_json("tiny");
  j["attention_bias"] = true;
  EXPECT_ERROR_HAS(parse(j, &c), "attention_bias");
}

TEST(Qwen3Config, UnsupportedQuantization) {
  Qwen3Config c;
  json j = preset_json("tiny");
  j["quantization_config"]["quant_method"] = "awq";
  EXPECT_ERROR_HAS(parse(j, &c), "quantization_config", "unsupported quant_method \"awq\"");
  j = preset_json("tiny");
  j["quantization_config"]["weight_block_size"] = {64, 64};
  EXPECT_ERROR_HAS(parse(j, &c), "unsupported weight_block_size [64,64]");
  j = preset_json("tiny");
  j["quantization_config"].erase("weight_block_size");
  EXPECT_ERROR_HAS(parse(j, &c), "per-tensor FP8 is unsupported");
  j = preset_json("tiny");
  j["quantization_config"]["activation_scheme"] = "static";
  EXPECT_ERROR_HAS(parse(j, &c), "unsupported activation_scheme \"static\"");
  j = preset_json("tiny");
  j["quantization_config"]["fmt"] = "e5m2";
  EXPECT_ERROR_HAS(parse(j, &c), "unsupported fmt \"e5m2\"");
}

TEST(Qwen3Config, ModulesToNotConvert) {
  json j = preset_json("tiny");
  j["quantization_config"]["modules_to_not_convert"] = {"lm_head", "model.layers.0.mlp.down_proj"};
  Qwen3Config c;
  ASSERT_TRUE(parse(j, &c).ok());
  EXPECT_EQ(c.modules_to_not_convert, (std::vector<std::string>{"lm_head", "model.layers.0.mlp.down_proj"}));
  j["quantization_config"]["modules_to_not_convert"] = {1};
  EXPECT_ERROR_HAS(parse(j, &c), "modules_to_not_convert");
}

TEST(Qwen3Config, MoeFieldsParse) {
  Qwen3Config c;
  ASSERT_TRUE(parse(preset_json("qwen3-30b-a3b"), &c).ok());
  EXPECT_EQ(c.model_type, "qwen3_moe");
  EXPECT_TRUE(c.is_moe());
  EXPECT_EQ(c.num_experts, 128);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_EQ(c.moe_intermediate_size, 768);
  EXPECT_EQ(c.intermediate_size, 6144);
  EXPECT_TRUE(c.norm_topk_prob);
  json j = preset_json("qwen3-30b-a3b");
  j.erase("num_experts");
  EXPECT_ERROR_HAS(parse(j, &c), "missing field \"num_experts\"");
  // field, bad value, what the error says
  const std::vector<std::tuple<std::string, json, std::string>> bad = {
      {"num_experts_per_tok", 9, "num_experts_per_tok 9 exceeds num_experts 8"},
      {"decoder_sparse_step", 0, "\"decoder_sparse_step\" = 0 must be >= 1"},
      {"mlp_only_layers", json::array({0, "1"}), "\"mlp_only_layers\" must be a list of layer indices"}};
  for (const auto& [field, value, message] : bad) {
    j = preset_json("tiny-moe");
    j[field] = value;
    EXPECT_ERROR_HAS(parse(j, &c), message);
  }
}

TEST(Qwen3Config, TinyMoeRoundTripsThroughJson) {
  Qwen3Config c;
  json j = preset_json("tiny-moe");
  j["mlp_only_layers"] = {1};
  j["decoder_sparse_step"] = 1;
  ASSERT_TRUE(parse(j, &c).ok());
  EXPECT_EQ(c.num_experts, 8);
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_EQ(c.moe_intermediate_size, 256);
  EXPECT_TRUE(c.is_moe_layer(0));
  EXPECT_FALSE(c.is_moe_layer(1));
}

TEST(GenerationConfig, EosIdOrList) {
  GenerationConfig g;
  ASSERT_TRUE(parse_generation_config(json{{"eos_token_id", 7}, {"top_k", 5}}, "g.json", &g).ok());
  EXPECT_EQ(g.eos_token_ids, (std::vector<int>{7}));
  EXPECT_EQ(g.top_k, 5);
  ASSERT_TRUE(parse_generation_config(json{{"eos_token_id", {151645, 151643}}, {"temperature", 0.7}}, "g.json", &g).ok());
  EXPECT_EQ(g.eos_token_ids, (std::vector<int>{151645, 151643}));
  EXPECT_EQ(g.temperature, 0.7);
  EXPECT_ERROR_HAS(parse_generation_config(json{{"eos_token_id", "x"}}, "g.json", &g), "g.json", "eos_token_id");
}

TEST(Presets, TinyAndOfficial) {
  Qwen3Config c;
  ASSERT_TRUE(qwen3_preset("tiny", &c).ok());
  EXPECT_EQ(dims(c), Dims(2, 256, 4, 2, 128, 768, 151936, true));
  ASSERT_TRUE(qwen3_preset("0.6b", &c).ok());
  EXPECT_EQ(c.hidden_size, 1024);
  EXPECT_TRUE(c.tie_word_embeddings);
  ASSERT_TRUE(qwen3_preset("qwen3-32b", &c).ok());
  EXPECT_EQ(c.num_hidden_layers, 64);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_ERROR_HAS(qwen3_preset("qwen3-7b", &c), "unknown preset \"qwen3-7b\"", "tiny", "qwen3-32b");
}

}  // namespace
}  // namespace fp8lm
