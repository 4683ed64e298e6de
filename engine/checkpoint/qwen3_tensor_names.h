// The official Hugging Face tensor names of a Qwen3 checkpoint (dense or MoE) and how they map onto
// Qwen3Weights (q/k/v and gate/up fused, per expert too), shared by the loader, the writer and the
// dummy weights.
#pragma once

#include <functional>
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
// A MoE layer's router, BF16 [num_experts, hidden] (listed in modules_to_not_convert).
inline constexpr const char* kRouterModule = "mlp.gate";

// "model.layers.{layer}.{module}" (module e.g. "self_attn.q_proj").
inline std::string layer_module(int layer, const std::string& module) {
  return "model.layers." + std::to_string(layer) + "." + module;
}

// One checkpoint linear that is (part of) a fused fp8lm linear.
struct LinearPart {
  std::string module;  // "self_attn.k_proj", "mlp.experts.3.up_proj"
  int rows;
};
// A linear of fp8lm's layout: its parts' rows stacked in order, all with k columns.
struct FusedLinearSpec {
  // Where the fused linear lives in a layer (a MoE layer's `moe.experts` must already be sized).
  std::function<Fp8Linear&(Qwen3LayerWeights&)> target;
  std::vector<LinearPart> parts;
  int k;
  int n() const {
    int n = 0;
    for (const LinearPart& p : parts) n += p.rows;
    return n;
  }
  Fp8Linear& of(Qwen3LayerWeights& layer) const { return target(layer); }
  // `target` only selects a member, so reading through it from a const layer is safe.
  const Fp8Linear& of(const Qwen3LayerWeights& layer) const { return target(const_cast<Qwen3LayerWeights&>(layer)); }
};

// The FP8 linears of layer `layer`: attention, then the dense MLP or every expert's MLP.
inline std::vector<FusedLinearSpec> qwen3_layer_linears(const Qwen3Config& c, int layer) {
  std::vector<FusedLinearSpec> specs = {
      {[](Qwen3LayerWeights& l) -> Fp8Linear& { return l.qkv; },
       {{"self_attn.q_proj", c.q_width()}, {"self_attn.k_proj", c.kv_width()}, {"self_attn.v_proj", c.kv_width()}},
       c.hidden_size},
      {[](Qwen3LayerWeights& l) -> Fp8Linear& { return l.o; }, {{"self_attn.o_proj", c.hidden_size}}, c.q_width()},
  };
  if (!c.is_moe_layer(layer)) {
    specs.push_back({[](Qwen3LayerWeights& l) -> Fp8Linear& { return l.gate_up; },
                     {{"mlp.gate_proj", c.intermediate_size}, {"mlp.up_proj", c.intermediate_size}},
                     c.hidden_size});
    specs.push_back({[](Qwen3LayerWeights& l) -> Fp8Linear& { return l.down; },
                     {{"mlp.down_proj", c.hidden_size}},
                     c.intermediate_size});
    return specs;
  }
  for (int e = 0; e < c.num_experts; ++e) {
    const std::string expert = "mlp.experts." + std::to_string(e) + ".";
    specs.push_back({[e](Qwen3LayerWeights& l) -> Fp8Linear& { return l.moe.experts[e].gate_up; },
                     {{expert + "gate_proj", c.moe_intermediate_size}, {expert + "up_proj", c.moe_intermediate_size}},
                     c.hidden_size});
    specs.push_back({[e](Qwen3LayerWeights& l) -> Fp8Linear& { return l.moe.experts[e].down; },
                     {{expert + "down_proj", c.hidden_size}},
                     c.moe_intermediate_size});
  }
  return specs;
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
