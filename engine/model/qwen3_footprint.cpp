#include "engine/model/qwen3_footprint.h"

#include "fp8lm/numerics.h"

namespace fp8lm {

namespace {

// An FP8 linear [n, k]: its parameters and its bytes (codes + fp32 block scales).
struct LinearCost {
  std::uint64_t params, bytes;
};
LinearCost linear(std::uint64_t n, std::uint64_t k) {
  const std::uint64_t blocks = static_cast<std::uint64_t>(ceil_div(static_cast<int>(n), kQuantGroup)) *
                               ceil_div(static_cast<int>(k), kQuantGroup);
  return {n * k, n * k + blocks * sizeof(float)};
}

}  // namespace

Qwen3Footprint qwen3_footprint(const Qwen3Config& c) {
  const std::uint64_t hidden = c.hidden_size, vocab = c.vocab_size;
  Qwen3Footprint f;
  const std::uint64_t embeddings = vocab * hidden * (c.tie_word_embeddings ? 1 : 2);
  const std::uint64_t norms = hidden + c.num_hidden_layers * (2 * hidden + 2 * static_cast<std::uint64_t>(c.head_dim));
  f.parameters = f.active_parameters = embeddings + norms;
  f.weight_bytes = (embeddings + norms) * sizeof(bf16);
  f.embedding_bytes = vocab * hidden * sizeof(bf16);
  f.norm_bytes = norms * sizeof(bf16);
  // A linear every token passes through (attention; a dense MLP).
  auto add_dense_linear = [&f](const LinearCost& l) {
    f.parameters += l.params;
    f.active_parameters += l.params;
    f.weight_bytes += l.bytes;
    f.active_linear_parameters += l.params;
    f.active_linear_bytes += l.bytes;
  };
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    add_dense_linear(linear(c.qkv_width(), hidden));
    add_dense_linear(linear(hidden, c.q_width()));
    if (!c.is_moe_layer(i)) {
      add_dense_linear(linear(2ull * c.intermediate_size, hidden));
      add_dense_linear(linear(hidden, c.intermediate_size));
      continue;
    }
    // The router (BF16, not converted) and the experts.
    const std::uint64_t router = hidden * c.num_experts;
    const LinearCost up = linear(2ull * c.moe_intermediate_size, hidden), down = linear(hidden, c.moe_intermediate_size);
    f.parameters += router + c.num_experts * (up.params + down.params);
    f.active_parameters += router + c.num_experts_per_tok * (up.params + down.params);
    f.weight_bytes += router * sizeof(bf16) + c.num_experts * (up.bytes + down.bytes);
    f.router_parameters += router;
    f.active_linear_parameters += c.num_experts_per_tok * (up.params + down.params);
    f.active_linear_bytes += c.num_experts_per_tok * (up.bytes + down.bytes);
  }
  f.kv_bytes_per_token = 2ull * c.num_hidden_layers * c.kv_width() * sizeof(bf16);
  return f;
}

}  // namespace fp8lm
