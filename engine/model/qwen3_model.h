// A Qwen3 model (dense or MoE) on one backend, serving one sequence (batch 1) with a contiguous KV
// cache. The forward pass follows transformers' modeling_qwen3 / modeling_qwen3_moe; FP8 linears
// quantize their input per token per 128 channels and run fp8lm's blockwise GEMM.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/model/backend.h"
#include "engine/model/qwen3_weights.h"

namespace fp8lm {

struct ModelOptions {
  int max_context = 0;        // KV cache length; 0: the config's max_position_embeddings
  int max_batch_tokens = 2048;  // longest chunk a forward call processes at once (prefill chunking)
};

// Bytes the model needs on its backend: weights, KV cache and scratch.
struct ModelMemory {
  std::size_t weights = 0;
  std::size_t kv_cache = 0;
  std::size_t scratch = 0;
  std::size_t total() const { return weights + kv_cache + scratch; }
};
ModelMemory model_memory(const Qwen3Config& config, const ModelOptions& options);

class Qwen3Model {
 public:
  // Uploads the weights. Fails, leaving nothing allocated, when the backend lacks the memory.
  static Status create(const Qwen3Weights& weights, Backend& backend, const ModelOptions& options,
                       std::unique_ptr<Qwen3Model>* out);
  ~Qwen3Model();

  // Appends `tokens` to the sequence (positions length() ...) and writes logits to `logits`
  // (host, fp32): of every appended token ([tokens.size(), vocab]) when all_logits, else only of
  // the last one ([vocab]). Errors (context full, bad token id) leave the sequence unchanged.
  Status forward(std::span<const std::int32_t> tokens, bool all_logits, std::vector<float>* logits);

  int length() const { return length_; }
  int max_context() const { return max_context_; }
  void reset() { length_ = 0; }
  // Keeps the first `length` positions of the sequence (their KV rows stay valid).
  void truncate(int length) { length_ = std::min(length_, std::max(0, length)); }
  const Qwen3Config& config() const { return config_; }
  Backend& backend() { return backend_; }

 private:
  struct Layer;
  struct Scratch;
  Qwen3Model(const Qwen3Config& config, Backend& backend);
  Status forward_chunk(std::span<const std::int32_t> tokens, bool all_logits, float* logits);

  Qwen3Config config_;
  Backend& backend_;
  int max_context_ = 0;
  int max_batch_tokens_ = 0;
  int length_ = 0;
  BackendBuffer embed_tokens_, norm_, lm_head_;  // lm_head_ empty when tied
  std::vector<Layer> layers_;
  std::unique_ptr<Scratch> scratch_;
};

}  // namespace fp8lm
