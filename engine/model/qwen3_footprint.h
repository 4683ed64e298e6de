// What a Qwen3 configuration costs: parameters, bytes of weights in fp8lm's layout, KV cache per
// token. Computed from the config alone, so it works for presets that were never materialised.
#pragma once

#include <cstdint>

#include "engine/model/qwen3_config.h"

namespace fp8lm {

struct Qwen3Footprint {
  std::uint64_t parameters = 0;         // every weight (MoE: all experts)
  std::uint64_t active_parameters = 0;  // per token (MoE: top-k experts); == parameters for dense
  std::uint64_t weight_bytes = 0;       // FP8 linears + fp32 128x128 scales, BF16 embeddings and norms
  std::uint64_t kv_bytes_per_token = 0; // BF16 K and V for every layer
  // Parts of weight_bytes. The active linears are those one token passes through (MoE: the top-k
  // experts of each MoE layer):
  std::uint64_t active_linear_parameters = 0;  // FP8 linears
  std::uint64_t active_linear_bytes = 0;       // their FP8 codes + fp32 128x128 block scales
  std::uint64_t router_parameters = 0;         // BF16 MoE routers [experts, hidden], every MoE layer
  std::uint64_t embedding_bytes = 0;           // one BF16 [vocab, hidden] matrix; untied models hold two
  std::uint64_t norm_bytes = 0;                // BF16 RMSNorm weights (final; per layer 2 x hidden + q/k head_dim)
};

Qwen3Footprint qwen3_footprint(const Qwen3Config& c);

}  // namespace fp8lm
