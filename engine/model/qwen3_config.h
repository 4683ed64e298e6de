// A Qwen3 (dense or MoE) model's configuration, as read from a Hugging Face config.json and
// generation_config.json, or taken from a built-in preset.
#pragma once

#include <string>
#include <vector>

namespace fp8lm {

struct Qwen3Config {
  std::string model_type;  // "qwen3" (dense) or "qwen3_moe"
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;  // dense MLP width
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;
  int head_dim = 128;
  double rms_norm_eps = 1e-6;
  double rope_theta = 1e6;
  int max_position_embeddings = 40960;
  bool tie_word_embeddings = false;
  int bos_token_id = 151643;

  // MoE (model_type "qwen3_moe"); num_experts == 0 for dense models.
  int num_experts = 0;
  int num_experts_per_tok = 0;
  int moe_intermediate_size = 0;
  int decoder_sparse_step = 1;
  bool norm_topk_prob = true;
  std::vector<int> mlp_only_layers;

  // quantization_config: {quant_method: fp8, fmt: e4m3, activation_scheme: dynamic,
  // weight_block_size: [128, 128]}; fp8 == false for plain BF16 checkpoints.
  bool fp8 = false;
  std::vector<std::string> modules_to_not_convert;

  int q_width() const { return num_attention_heads * head_dim; }
  int kv_width() const { return num_key_value_heads * head_dim; }
  int qkv_width() const { return q_width() + 2 * kv_width(); }
  bool is_moe() const { return num_experts > 0; }
  // Whether layer `layer` has routed experts instead of a dense MLP (transformers'
  // Qwen3MoeDecoderLayer: not in mlp_only_layers and (layer + 1) % decoder_sparse_step == 0).
  bool is_moe_layer(int layer) const {
    for (int dense : mlp_only_layers)
      if (dense == layer) return false;
    return is_moe() && decoder_sparse_step > 0 && (layer + 1) % decoder_sparse_step == 0;
  }
};

// generation_config.json: the ids that end a reply, and the checkpoint's sampling defaults.
struct GenerationConfig {
  std::vector<int> eos_token_ids = {151645, 151643};
  double temperature = 0.6;
  int top_k = 20;
  double top_p = 0.95;
  double min_p = 0.0;
};

}  // namespace fp8lm
