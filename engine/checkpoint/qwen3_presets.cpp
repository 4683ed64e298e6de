#include "engine/checkpoint/qwen3_presets.h"

#include "fp8lm/qwen3_models.h"

namespace fp8lm {

namespace {

Qwen3Config tiny_config() {
  Qwen3Config c;
  c.model_type = "qwen3";
  c.vocab_size = 151936;
  c.hidden_size = 256;
  c.intermediate_size = 768;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.tie_word_embeddings = true;
  c.fp8 = true;
  return c;
}

// tiny with its MLPs replaced by 8 experts of width 256, 2 chosen per token (all layers sparse).
Qwen3Config tiny_moe_config() {
  Qwen3Config c = tiny_config();
  c.model_type = "qwen3_moe";
  c.num_experts = 8;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = 256;
  c.norm_topk_prob = true;
  return c;
}

Qwen3Config official_config(const Qwen3Dims& d) {
  const std::string name = d.name;
  Qwen3Config c;
  c.vocab_size = 151936;
  c.hidden_size = d.hidden;
  c.num_hidden_layers = d.layers;
  c.num_attention_heads = d.q_heads;
  c.num_key_value_heads = d.kv_heads;
  c.head_dim = kQwen3HeadDim;
  // Only the three smallest dense models share the input and output embeddings.
  c.tie_word_embeddings = name == "qwen3-0.6b" || name == "qwen3-1.7b" || name == "qwen3-4b";
  c.fp8 = true;
  if (d.experts == 0) {
    c.model_type = "qwen3";
    c.intermediate_size = d.intermediate;
  } else {
    c.model_type = "qwen3_moe";
    c.moe_intermediate_size = d.intermediate;
    // config.json's (unused) dense width: 30B-A3B 6144, 235B-A22B 12288.
    c.intermediate_size = d.hidden * 3;
    c.num_experts = d.experts;
    c.num_experts_per_tok = d.top_k;
    c.norm_topk_prob = true;
  }
  return c;
}

}  // namespace

std::vector<std::string> qwen3_preset_names() {
  std::vector<std::string> names = {kTinyPreset, kTinyMoePreset};
  for (const Qwen3Dims& d : kQwen3Models) names.push_back(d.name);
  return names;
}

Status qwen3_preset(const std::string& name, Qwen3Config* out) {
  if (name == kTinyPreset) {
    *out = tiny_config();
    return Status::Ok();
  }
  if (name == kTinyMoePreset) {
    *out = tiny_moe_config();
    return Status::Ok();
  }
  for (const Qwen3Dims& d : kQwen3Models)
    if (name == d.name || "qwen3-" + name == d.name) {
      *out = official_config(d);
      return Status::Ok();
    }
  std::string known;
  for (const std::string& n : qwen3_preset_names()) known += (known.empty() ? "" : ", ") + n;
  return Status::Error("unknown preset \"" + name + "\" (known: " + known + ")");
}

}  // namespace fp8lm
