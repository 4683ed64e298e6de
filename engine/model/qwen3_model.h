// A Qwen3 model (dense or MoE) on one backend, serving one sequence (batch 1) from a paged KV cache
// (engine/model/kv_cache.h) whose pool holds --max-context tokens. The forward pass follows
// transformers' modeling_qwen3 / modeling_qwen3_moe; FP8 linears quantize their input per token per
// 128 channels and run fp8lm's blockwise GEMM.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "engine/model/backend.h"
#include "engine/model/kv_cache.h"
#include "engine/model/qwen3_weights.h"

namespace fp8lm {

struct ModelOptions {
  int max_context = 0;        // longest sequence (the KV pages for it); 0: the config's max_position_embeddings
  int max_batch_tokens = 2048;  // longest chunk a forward call processes at once (prefill chunking)
  // Single-token forwards (decode) replay a CUDA graph on backends that have them
  // (same bits as running the ops one by one); false: always run the ops one by one.
  bool cuda_graphs = true;
  // Single-token forwards of dense models run every layer as one op (Backend::decode_layers: one
  // persistent kernel on a GPU) where the backend runs it (the model's sizes); false: layer by
  // layer. Both compute the same ops (not the same bits on a GPU: attention and the GEMMs sum in
  // other orders). Default: FP8LM_DECODE_LAYERS (off: the kernel is slower than the layered path
  // so far, docs/engine.md).
  bool decode_layers = decode_layers_enabled();
};

// Bytes the model needs on its backend: weights, KV cache (pages for max_context tokens, rounded up to
// whole pages, and the block table) and scratch.
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
  // One token at a time goes through the decode graph when uses_decode_graph().
  Status forward(std::span<const std::int32_t> tokens, bool all_logits, std::vector<float>* logits);

  // Greedy decoding with the choice made on the backend (Backend::greedy_token): forwards `token`,
  // then each chosen token in turn, and passes the chosen tokens to on_token in order until it
  // returns false or max_tokens were chosen (fewer when the context fills: each chosen token but
  // the last is forwarded). The backend runs a step ahead of the host: step s + 1 is enqueued
  // before the host waits for step s's token, so the host's work (on_token's too) overlaps a step
  // instead of adding to it, and no logits leave the backend. Afterwards the sequence holds `token`
  // and every chosen token but the last, as after forward() on each (the step run ahead is
  // dropped). The tokens are the argmax of the logits forward() would return (the smallest index
  // on ties). An error leaves the sequence holding the forwards whose tokens were passed on.
  Status generate_greedy(std::int32_t token, int max_tokens, const std::function<bool(std::int32_t)>& on_token);

  // Whether single-token forwards replay a CUDA graph: ModelOptions::cuda_graphs and a backend
  // with graphs (dense and MoE models alike: MoE layers plan their experts on the backend).
  bool uses_decode_graph() const { return use_decode_graph_; }
  // Whether single-token forwards run every layer as one op (Backend::decode_layers: the
  // persistent decode kernel on a GPU): dense models of the sizes it supports, FP8LM_DECODE_LAYERS.
  bool uses_decode_layers() const { return decode_layer_table_.bytes() > 0; }

  int length() const { return length_; }
  int max_context() const { return max_context_; }
  void reset() { truncate(0); }
  // Keeps the first `length` positions of the sequence (their KV rows stay valid) and releases the
  // KV pages past them.
  void truncate(int length);
  // The sequence's KV pages: pages().size() == ceil(length() / kKvPageSize).
  const KvSequence& kv_sequence() const { return *sequence_; }
  const Qwen3Config& config() const { return config_; }
  Backend& backend() { return backend_; }

  friend ModelMemory model_memory(const Qwen3Config& config, const ModelOptions& options);

 private:
  struct Layer;
  struct Scratch;
  // Every scratch buffer with its size for chunks of up to t tokens (the options' max_batch_tokens):
  // create() allocates exactly these and model_memory() adds them up, so the memory check counts
  // what is allocated.
  using ScratchLayout = std::vector<std::pair<BackendBuffer Scratch::*, std::size_t>>;
  static ScratchLayout scratch_layout(const Qwen3Config& c, const ModelOptions& options);
  struct DecodeGraph;
  Qwen3Model(const Qwen3Config& config, Backend& backend);
  Status forward_chunk(std::span<const std::int32_t> tokens, bool all_logits, float* logits);
  // Enqueues the embedding and every layer for n tokens whose ids are in backend memory, at
  // positions start_pos ... (or *start_pos_ptr ..., backend memory read when the ops run; then
  // start_pos is its upper bound). Leaves the residual stream of the chunk in the scratch.
  Status enqueue_layers(int n, const std::int32_t* ids, int start_pos, const int* start_pos_ptr);
  // The forward of `tokens` once their KV pages are reserved.
  Status forward_reserved(std::span<const std::int32_t> tokens, bool all_logits, float* logits);
  // The final norm of `rows` residual rows into the scratch (the lm_head's input), and the
  // lm_head's weights (the embedding when tied).
  Status final_norm(const bf16* x_rows, int rows);
  const bf16* head_weights() const;
  // forward()'s and generate_greedy()'s checks of the tokens to append.
  Status check_append(std::span<const std::int32_t> tokens, const char* fn) const;
  // The single-token forward through the decode graph (captured on first use).
  Status decode_with_graph(std::int32_t token, float* logits);
  // The ops the decode graphs record for one token whose id and position are in backend memory
  // (step[0], step[1]): the layers, the final norm and the lm_head into the scratch's logits.
  Status enqueue_recorded_step(const std::int32_t* step);
  struct GreedyDecode;
  // One step of generate_greedy: the layers on the token and position in g.step, the final norm,
  // the lm_head and the greedy token (into g.step and the host ring).
  Status enqueue_greedy_step(const GreedyDecode& g);
  // Enqueues generate_greedy's next step (eagerly, or by replaying its graph, captured on first
  // use like the decode graph), its KV page reserved first, and marks it in `slot`.
  Status launch_greedy_step(int position, int slot);

  Qwen3Config config_;
  Backend& backend_;
  int max_context_ = 0;
  int max_batch_tokens_ = 0;
  int length_ = 0;
  BackendBuffer embed_tokens_, norm_, lm_head_;  // lm_head_ empty when tied
  std::vector<Layer> layers_;
  BackendBuffer decode_layer_table_;  // DecodeLayerWeights per layer, when uses_decode_layers()
  std::unique_ptr<KvCache> kv_cache_;
  std::unique_ptr<KvSequence> sequence_;  // after kv_cache_: released first, returning its pages
  std::unique_ptr<Scratch> scratch_;
  bool use_decode_graph_ = false;
  bool decode_warmed_up_ = false;  // a single-token forward has run eagerly (see decode_with_graph)
  std::unique_ptr<DecodeGraph> decode_graph_;
  std::unique_ptr<GreedyDecode> greedy_;
};

}  // namespace fp8lm
