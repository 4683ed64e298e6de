// The official Hugging Face tensor names of a Qwen3 dense checkpoint and how they map onto
// Qwen3Weights (q/k/v and gate/up fused), shared by the loader, the writer and the dummy weights.
#pragma once

#include <string>
#include <vector>

#include "engine/model/qwen3_weights.h"

namespace fp8lm {

inline constexpr const char* kEmbedTokens = "model.embed_tokens.weight";
inline constexpr const char* kFinalNorm = "model.norm.weight";
inline constexpr const char* kLmHead = "lm_head.weight";
// A quantized linear's block scales sit next to its weight: "<module>.weight_scale_inv".
inline constexpr const char* kWeightSuffix = ".weight";
inline constexpr const char* kScaleSuffix = ".weight_scale_inv";

// "model.layers.{layer}.{module}" (module e.g. "self_attn.q_proj").
inline std::string layer_module(int layer, const std::string& module) {
  return "model.layers." + std::to_string(layer) + "." + module;
}

// One checkpoint linear that is (part of) a fused fp8lm linear.
struct LinearPart {
  const char* module;  // "self_attn.k_proj"
  int rows;
};
// A linear of fp8lm's layout: its parts' rows stacked in order, all with k columns.
struct FusedLinearSpec {
  Fp8Linear Qwen3LayerWeights::*member;
  std::vector<LinearPart> parts;
  int k;
  int n() const {
    int n = 0;
    for (const LinearPart& p : parts) n += p.rows;
    return n;
  }
};

inline std::vector<FusedLinearSpec> qwen3_layer_linears(const Qwen3Config& c) {
  return {
      {&Qwen3LayerWeights::qkv,
       {{"self_attn.q_proj", c.q_width()}, {"self_attn.k_proj", c.kv_width()}, {"self_attn.v_proj", c.kv_width()}},
       c.hidden_size},
      {&Qwen3LayerWeights::o, {{"self_attn.o_proj", c.hidden_size}}, c.q_width()},
      {&Qwen3LayerWeights::gate_up,
       {{"mlp.gate_proj", c.intermediate_size}, {"mlp.up_proj", c.intermediate_size}},
       c.hidden_size},
      {&Qwen3LayerWeights::down, {{"mlp.down_proj", c.hidden_size}}, c.intermediate_size},
  };
}

// A bf16 vector of one layer (the RMSNorm weights).
struct LayerNormSpec {
  const char* module;
  std::vector<bf16> Qwen3LayerWeights::*member;
  int size;
};

inline std::vector<LayerNormSpec> qwen3_layer_norms(const Qwen3Config& c) {
  return {{"input_layernorm", &Qwen3LayerWeights::input_layernorm, c.hidden_size},
          {"post_attention_layernorm", &Qwen3LayerWeights::post_attention_layernorm, c.hidden_size},
          {"self_attn.q_norm", &Qwen3LayerWeights::q_norm, c.head_dim},
          {"self_attn.k_norm", &Qwen3LayerWeights::k_norm, c.head_dim}};
}

}  // namespace fp8lm
