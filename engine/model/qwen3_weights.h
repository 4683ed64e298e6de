// A Qwen3 model's weights in fp8lm's layout, in host memory: what a checkpoint loader (or the
// dummy-weight generator) produces and what a backend uploads. Linear layers are FP8 with fp32
// 128x128 block scales; q/k/v and gate/up are fused at load time.
#pragma once

#include <vector>

#include "engine/model/qwen3_config.h"
#include "fp8lm/numerics.h"

namespace fp8lm {

// One FP8 linear layer: y[m, n] = x[m, k] . w[n, k]^T, w dequantized blockwise.
struct Fp8Linear {
  int n = 0;
  int k = 0;
  std::vector<fp8_e4m3> weight;  // [n, k] row-major
  std::vector<float> scales;     // [ceil(n/128), ceil(k/128)] row-major, value = fp8 * scale
};

// A SwiGLU feed-forward network: down(silu(gate(x)) * up(x)), gate and up fused.
struct Qwen3Expert {
  Fp8Linear gate_up;  // [2 moe_intermediate, hidden]: rows of gate, then up
  Fp8Linear down;     // [hidden, moe_intermediate]
};

// The sparse MLP of a Qwen3-MoE layer (transformers' Qwen3MoeSparseMoeBlock).
struct Qwen3MoeBlock {
  std::vector<bf16> router;          // [num_experts, hidden] `mlp.gate.weight`, kept in bf16
                                     // (modules_to_not_convert)
  std::vector<Qwen3Expert> experts;  // [num_experts]
};

struct Qwen3LayerWeights {
  std::vector<bf16> input_layernorm;           // [hidden]
  std::vector<bf16> post_attention_layernorm;  // [hidden]
  std::vector<bf16> q_norm;                    // [head_dim]
  std::vector<bf16> k_norm;                    // [head_dim]
  Fp8Linear qkv;      // [q_width + 2 kv_width, hidden]: rows of q, then k, then v
  Fp8Linear o;        // [hidden, q_width]
  // Dense MLP (every layer of a dense model; a MoE model's mlp_only_layers), else empty.
  Fp8Linear gate_up;  // [2 intermediate, hidden]: rows of gate, then up
  Fp8Linear down;     // [hidden, intermediate]
  // Routed experts (Qwen3Config::is_moe_layer), else empty.
  Qwen3MoeBlock moe;
};

struct Qwen3Weights {
  Qwen3Config config;
  GenerationConfig generation;
  std::vector<bf16> embed_tokens;  // [vocab, hidden]
  std::vector<bf16> norm;          // [hidden] (final norm)
  std::vector<bf16> lm_head;       // [vocab, hidden]; empty when tied to embed_tokens
  std::vector<Qwen3LayerWeights> layers;

  const std::vector<bf16>& output_embedding() const { return lm_head.empty() ? embed_tokens : lm_head; }
};

}  // namespace fp8lm
