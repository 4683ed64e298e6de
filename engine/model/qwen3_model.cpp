#include "engine/model/qwen3_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "engine/model/qwen3_footprint.h"

namespace fp8lm {

namespace {

// The widest MLP a layer of this model runs: the dense one (if any layer is dense) or an expert.
int widest_mlp(const Qwen3Config& c) {
  int widest = 0;
  for (int i = 0; i < c.num_hidden_layers; ++i)
    widest = std::max(widest, c.is_moe_layer(i) ? c.moe_intermediate_size : c.intermediate_size);
  return widest;
}

std::string gib(std::size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / double(1ull << 30));
  return buf;
}

}  // namespace

// One FP8 linear on the backend, or (upload_stacked) all experts' linears of a MoE layer stacked
// as fp8lm/grouped_gemm.h wants them; n and k are then one expert's.
struct DeviceLinear {
  BackendBuffer weight, scales;
  int n = 0, k = 0;

  // Uploads `w` after checking it against the shape [n, k] the config gives it.
  static Status upload(Backend& b, const Fp8Linear& w, const std::string& name, int layer, int n, int k,
                       DeviceLinear* out) {
    FP8LM_RETURN_IF_ERROR(check(w, name, layer, n, k));
    out->n = w.n, out->k = w.k;
    FP8LM_RETURN_IF_ERROR(BackendBuffer::from_host(b, w.weight.data(), w.weight.size(), &out->weight));
    return BackendBuffer::from_host(b, w.scales.data(), w.scales.size() * sizeof(float), &out->scales);
  }

  // Expert e's weight at rows [e * n, (e + 1) * n) of one [experts * n, k] buffer, its scales
  // after expert e - 1's; each expert is uploaded in place (no stacked host copy).
  static Status upload_stacked(Backend& b, const std::vector<Qwen3Expert>& experts,
                               Fp8Linear Qwen3Expert::*linear, const std::string& name, int layer, int n, int k,
                               DeviceLinear* out) {
    const std::size_t weight_bytes = static_cast<std::size_t>(n) * k;
    const std::size_t scale_bytes =
        static_cast<std::size_t>(ceil_div(n, kQuantGroup)) * ceil_div(k, kQuantGroup) * sizeof(float);
    out->n = n, out->k = k;
    FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate(b, experts.size() * weight_bytes, &out->weight));
    FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate(b, experts.size() * scale_bytes, &out->scales));
    for (std::size_t e = 0; e < experts.size(); ++e) {
      const Fp8Linear& w = experts[e].*linear;
      FP8LM_RETURN_IF_ERROR(check(w, "expert " + std::to_string(e) + " " + name, layer, n, k));
      FP8LM_RETURN_IF_ERROR(b.upload(out->weight.as<std::uint8_t>() + e * weight_bytes, w.weight.data(), weight_bytes));
      FP8LM_RETURN_IF_ERROR(b.upload(out->scales.as<std::uint8_t>() + e * scale_bytes, w.scales.data(), scale_bytes));
    }
    return Status::Ok();
  }

 private:
  // `w` against the shape [n, k] the config gives it.
  static Status check(const Fp8Linear& w, const std::string& name, int layer, int n, int k) {
    const std::string at = "model: layer " + std::to_string(layer) + " " + name;
    if (w.n != n || w.k != k)
      return Status::Error(at + " is [" + std::to_string(w.n) + ", " + std::to_string(w.k) + "], the config says [" +
                           std::to_string(n) + ", " + std::to_string(k) + "]");
    if (w.weight.size() != static_cast<std::size_t>(w.n) * w.k ||
        w.scales.size() != static_cast<std::size_t>(ceil_div(w.n, kQuantGroup)) * ceil_div(w.k, kQuantGroup))
      return Status::Error(at + ": weight or scale size does not match [" + std::to_string(w.n) + ", " +
                           std::to_string(w.k) + "]");
    return Status::Ok();
  }
};

struct Qwen3Model::Layer {
  BackendBuffer input_layernorm, post_attention_layernorm, q_norm, k_norm;
  DeviceLinear qkv, o;
  DeviceLinear gate_up, down;         // dense MLP; empty in MoE layers
  BackendBuffer router;                        // MoE: bf16 [num_experts, hidden]
  DeviceLinear experts_gate_up, experts_down;  // MoE: every expert's, stacked; empty in dense layers
};

// Activations for a chunk of up to max_batch_tokens tokens.
struct Qwen3Model::Scratch {
  BackendBuffer tokens;       // int32 [T]
  BackendBuffer x;            // bf16 [T, hidden]: the residual stream
  BackendBuffer h;            // bf16 [T, max(hidden, q_width)]: normed input / attention output
  BackendBuffer q8;           // fp8: a GEMM input, quantized (sizes: scratch_layout)
  BackendBuffer q8_scales;    // fp32: its scales
  BackendBuffer qkv;          // bf16 [T, qkv_width]
  BackendBuffer mlp;          // bf16: gate_up output
  // Decode (up to kGateUpSwigluMaxRows tokens): the down projection's quantized input, apart from
  // q8 (gate_up_swiglu writes it while the gate_up GEMM still reads q8), and its counters (zero).
  BackendBuffer act_q8;
  BackendBuffer act_scales;
  BackendBuffer swiglu_counters;
  BackendBuffer out;          // bf16 [T, hidden]: a GEMM output before the residual add
  BackendBuffer logits;       // fp32 [kLogitsRows, vocab]: lm_head output, downloaded piece by piece
  BackendBuffer attention_workspace;  // lets decode attention split long contexts over the SMs
  BackendBuffer decode_workspace;     // dense models: decode_layers' (GPU)
  // MoE models only (K = num_experts_per_tok; rows sorted by expert, see fp8lm/moe_ops.h).
  BackendBuffer router_logits;    // fp32 [T, num_experts]
  BackendBuffer routed_experts;   // int32 [T, K]
  BackendBuffer routed_weights;   // bf16 [T, K]
  BackendBuffer expert_offsets;   // int32 [num_experts + 1]: moe_plan's, read by the grouped GEMMs
  BackendBuffer gather_rows;      // int32 [T K]
  BackendBuffer combine_slots;    // int32 [T K]
  BackendBuffer combine_weights;  // bf16 [T K]
  BackendBuffer expert_out;       // bf16 [T K, hidden]: expert outputs in the same order
};

// The single-token forward recorded once and replayed (CUDA graphs). The graph's operations read
// the token id and the position from `step` (device memory), which a recorded copy fills from the
// page-locked `step_host` the host writes before each replay; the last recorded operation copies
// the logits to the page-locked `logits_host`. The KV block table is read from its fixed device
// address (KvSequence::device_table), which forward() updates before the replay when the step
// needs a new page (once every kKvPageSize tokens), outside the graph.
struct Qwen3Model::DecodeGraph {
  BackendBuffer step_host;    // int32 [2]: token id, position (page-locked host memory)
  BackendBuffer step;         // int32 [2]: the same in backend memory
  BackendBuffer logits_host;  // fp32 [vocab] (page-locked host memory)
  std::unique_ptr<BackendGraph> graph;
};

// generate_greedy's state: `step` holds the next step's token id and position in backend memory
// (the host writes it before the first step, then each step's greedy_token does), and each step
// writes its token to the page-locked ring `tokens_host` at its position modulo kRing (at most two
// steps are in flight, so a slot is read before it is written again). Replays of `graph` read and
// write only these and the scratch, like the decode graph.
struct Qwen3Model::GreedyDecode {
  static constexpr int kRing = 8;
  BackendBuffer step;         // int32 [2]: token id, position
  BackendBuffer tokens_host;  // int32 [kRing] (page-locked host memory)
  std::unique_ptr<BackendGraph> graph;
};

namespace {
// Attention splits keys only when few (token, head) blocks would run: size the workspace for that.
constexpr int kAttentionWorkspaceTokens = 16;
// KV pages for a sequence of max_context tokens (the pool holds one such sequence today).
int kv_pages(int max_context) { return ceil_div(max_context, kKvPageSize); }
// Rows of logits computed per lm_head call: all-position logits (forward(..., true, ...)) go to the
// host in pieces of this many rows, so the device buffer is 64 x vocab floats (39 MB for Qwen3),
// not max_batch_tokens x vocab (1.2 GB).
constexpr int kLogitsRows = 64;

// Whether one-token forwards run every layer as one op (Backend::decode_layers): asked for, and a
// dense model of sizes the op supports.
bool runs_decode_layers(const Qwen3Config& c, const ModelOptions& options) {
  return options.decode_layers && !c.is_moe() &&
         decode_layers_supported(c.hidden_size, c.intermediate_size, c.num_attention_heads, c.num_key_value_heads,
                                 c.head_dim);
}

// Rows of the decode activation buffers (act_q8): kGateUpSwigluMaxRows tokens, each top_k expert
// rows in MoE models.
std::size_t swiglu_act_rows(const Qwen3Config& c) {
  return static_cast<std::size_t>(kGateUpSwigluMaxRows) * (c.is_moe() ? std::max(c.num_experts_per_tok, 1) : 1);
}

// Bytes of the GEMM-input scratch (q8, q8_scales) and of the gate_up output (mlp) for T tokens:
// T rows of the widest input, or in MoE models T * top_k expert rows, since every expert's rows
// go through one grouped GEMM at once.
struct MlpScratch {
  std::size_t q8, q8_scales, mlp;
};
MlpScratch mlp_scratch(const Qwen3Config& c, std::size_t t) {
  const std::size_t mlp = widest_mlp(c);
  const std::size_t widest =
      std::max({static_cast<std::size_t>(c.hidden_size), static_cast<std::size_t>(c.q_width()), mlp});
  MlpScratch m{t * widest, t * ceil_div(static_cast<int>(widest), kQuantGroup) * sizeof(float),
               t * 2 * mlp * sizeof(bf16)};
  if (c.is_moe()) {
    const std::size_t pairs = t * c.num_experts_per_tok;
    const int width = std::max(c.hidden_size, c.moe_intermediate_size);
    m.q8 = std::max(m.q8, pairs * width);
    m.q8_scales = std::max(m.q8_scales, pairs * ceil_div(width, kQuantGroup) * sizeof(float));
    m.mlp = std::max(m.mlp, pairs * 2 * c.moe_intermediate_size * sizeof(bf16));
  }
  return m;
}

}  // namespace

Qwen3Model::ScratchLayout Qwen3Model::scratch_layout(const Qwen3Config& c, const ModelOptions& options) {
  using S = Scratch;
  const std::size_t t = options.max_batch_tokens;
  const MlpScratch mlp = mlp_scratch(c, t);
  const std::size_t hidden = c.hidden_size, b16 = sizeof(bf16), i32 = sizeof(std::int32_t);
  ScratchLayout layout = {
      {&S::tokens, t * i32},
      {&S::x, t * hidden * b16},
      {&S::h, t * std::max(c.hidden_size, c.q_width()) * b16},
      {&S::q8, mlp.q8},
      {&S::q8_scales, mlp.q8_scales},
      {&S::qkv, t * c.qkv_width() * b16},
      {&S::mlp, mlp.mlp},
      {&S::act_q8, swiglu_act_rows(c) * widest_mlp(c)},
      {&S::act_scales, swiglu_act_rows(c) * gate_up_swiglu_counters(widest_mlp(c)) * sizeof(float)},
      {&S::swiglu_counters, std::max(gate_up_swiglu_counters(widest_mlp(c)),
                                     c.is_moe() ? grouped_gate_up_swiglu_counters(c.num_experts, c.moe_intermediate_size)
                                                : std::size_t{0}) *
                                i32},
      {&S::out, t * hidden * b16},
      {&S::logits, kLogitsRows * static_cast<std::size_t>(c.vocab_size) * sizeof(float)},
      {&S::attention_workspace, attention_workspace_bytes(kAttentionWorkspaceTokens, c.num_attention_heads)},
      {&S::decode_workspace, runs_decode_layers(c, options) ? decode_layers_workspace_bytes(
                                                                c.intermediate_size, c.num_attention_heads,
                                                                c.num_key_value_heads)
                                                          : 0},
  };
  if (c.is_moe()) {
    const std::size_t pairs = t * c.num_experts_per_tok;
    layout.insert(layout.end(), {
                                    {&S::router_logits, t * c.num_experts * sizeof(float)},
                                    {&S::routed_experts, pairs * i32},
                                    {&S::routed_weights, pairs * b16},
                                    {&S::expert_offsets, (static_cast<std::size_t>(c.num_experts) + 1) * i32},
                                    {&S::gather_rows, pairs * i32},
                                    {&S::combine_slots, pairs * i32},
                                    {&S::combine_weights, pairs * b16},
                                    {&S::expert_out, pairs * hidden * b16},
                                });
  }
  return layout;
}

ModelMemory model_memory(const Qwen3Config& c, const ModelOptions& options) {
  ModelMemory m;
  const int ctx = options.max_context > 0 ? options.max_context : c.max_position_embeddings;
  const Qwen3Footprint footprint = qwen3_footprint(c);
  m.weights = footprint.weight_bytes;
  m.kv_cache = KvCache::bytes(c.num_hidden_layers, c.kv_width(), kv_pages(ctx), kKvPageSize) +
               KvSequence::table_bytes(kv_pages(ctx));
  for (const auto& [buffer, bytes] : Qwen3Model::scratch_layout(c, options)) m.scratch += bytes;
  return m;
}

Qwen3Model::Qwen3Model(const Qwen3Config& config, Backend& backend) : config_(config), backend_(backend) {}
Qwen3Model::~Qwen3Model() = default;

Status Qwen3Model::create(const Qwen3Weights& w, Backend& b, const ModelOptions& options,
                          std::unique_ptr<Qwen3Model>* out) {
  const Qwen3Config& c = w.config;
  if (c.head_dim != 128) return Status::Error("model: head_dim " + std::to_string(c.head_dim) + " is not supported (Qwen3 uses 128)");
  if (static_cast<int>(w.layers.size()) != c.num_hidden_layers)
    return Status::Error("model: " + std::to_string(w.layers.size()) + " layers loaded, config says " +
                         std::to_string(c.num_hidden_layers));
  if (options.max_batch_tokens < 1) return Status::Error("model: max_batch_tokens must be >= 1");
  ModelOptions opt = options;
  if (opt.max_context <= 0) opt.max_context = c.max_position_embeddings;
  const ModelMemory need = model_memory(c, opt);
  const std::size_t available = b.available_bytes();
  if (available > 0 && need.total() > available)
    return Status::Error("model: needs " + gib(need.total()) + " on " + b.describe() + " (weights " + gib(need.weights) +
                         ", KV cache for " + std::to_string(opt.max_context) + " tokens " + gib(need.kv_cache) +
                         ", scratch " + gib(need.scratch) + ") but only " + gib(available) +
                         " is free; lower --max-context or use a larger GPU");

  std::unique_ptr<Qwen3Model> m(new Qwen3Model(c, b));
  m->max_context_ = opt.max_context;
  m->max_batch_tokens_ = opt.max_batch_tokens;
  m->use_decode_graph_ = opt.cuda_graphs && b.supports_graphs();
  auto bf16_vec = [&](const std::vector<bf16>& v, std::size_t expect, const std::string& name, BackendBuffer* buf) {
    if (v.size() != expect)
      return Status::Error("model: " + name + " has " + std::to_string(v.size()) + " values, expected " + std::to_string(expect));
    return BackendBuffer::from_host(b, v.data(), v.size() * sizeof(bf16), buf);
  };
  const std::size_t embed_count = static_cast<std::size_t>(c.vocab_size) * c.hidden_size;
  FP8LM_RETURN_IF_ERROR(bf16_vec(w.embed_tokens, embed_count, "embed_tokens", &m->embed_tokens_));
  FP8LM_RETURN_IF_ERROR(bf16_vec(w.norm, c.hidden_size, "norm", &m->norm_));
  if (!w.lm_head.empty()) FP8LM_RETURN_IF_ERROR(bf16_vec(w.lm_head, embed_count, "lm_head", &m->lm_head_));

  m->layers_.resize(c.num_hidden_layers);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const Qwen3LayerWeights& lw = w.layers[i];
    Layer& l = m->layers_[i];
    const std::string at = "layer " + std::to_string(i) + " ";
    FP8LM_RETURN_IF_ERROR(bf16_vec(lw.input_layernorm, c.hidden_size, at + "input_layernorm", &l.input_layernorm));
    FP8LM_RETURN_IF_ERROR(
        bf16_vec(lw.post_attention_layernorm, c.hidden_size, at + "post_attention_layernorm", &l.post_attention_layernorm));
    FP8LM_RETURN_IF_ERROR(bf16_vec(lw.q_norm, c.head_dim, at + "q_norm", &l.q_norm));
    FP8LM_RETURN_IF_ERROR(bf16_vec(lw.k_norm, c.head_dim, at + "k_norm", &l.k_norm));
    FP8LM_RETURN_IF_ERROR(DeviceLinear::upload(b, lw.qkv, "qkv", i, c.qkv_width(), c.hidden_size, &l.qkv));
    FP8LM_RETURN_IF_ERROR(DeviceLinear::upload(b, lw.o, "o_proj", i, c.hidden_size, c.q_width(), &l.o));
    if (c.is_moe_layer(i)) {
      FP8LM_RETURN_IF_ERROR(bf16_vec(lw.moe.router, static_cast<std::size_t>(c.num_experts) * c.hidden_size,
                                     at + "router (mlp.gate)", &l.router));
      if (static_cast<int>(lw.moe.experts.size()) != c.num_experts)
        return Status::Error("model: " + at + "has " + std::to_string(lw.moe.experts.size()) + " experts, config says " +
                             std::to_string(c.num_experts));
      FP8LM_RETURN_IF_ERROR(DeviceLinear::upload_stacked(b, lw.moe.experts, &Qwen3Expert::gate_up, "gate_up",
                                                         i, 2 * c.moe_intermediate_size, c.hidden_size,
                                                         &l.experts_gate_up));
      FP8LM_RETURN_IF_ERROR(DeviceLinear::upload_stacked(b, lw.moe.experts, &Qwen3Expert::down, "down_proj", i,
                                                         c.hidden_size, c.moe_intermediate_size, &l.experts_down));
    } else {
      FP8LM_RETURN_IF_ERROR(
          DeviceLinear::upload(b, lw.gate_up, "gate_up", i, 2 * c.intermediate_size, c.hidden_size, &l.gate_up));
      FP8LM_RETURN_IF_ERROR(
          DeviceLinear::upload(b, lw.down, "down_proj", i, c.hidden_size, c.intermediate_size, &l.down));
    }
  }
  const int pages = kv_pages(opt.max_context);
  FP8LM_RETURN_IF_ERROR(KvCache::create(b, c.num_hidden_layers, c.kv_width(), pages, kKvPageSize, &m->kv_cache_));
  FP8LM_RETURN_IF_ERROR(KvSequence::create(b, *m->kv_cache_, pages, &m->sequence_));

  auto s = std::make_unique<Scratch>();
  for (const auto& [buffer, bytes] : scratch_layout(c, opt))
    FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate(b, bytes, &(s.get()->*buffer)));
  {
    const std::vector<std::int32_t> zeros(s->swiglu_counters.bytes() / sizeof(std::int32_t), 0);
    FP8LM_RETURN_IF_ERROR(b.upload(s->swiglu_counters.as<void>(), zeros.data(), s->swiglu_counters.bytes()));
  }
  m->scratch_ = std::move(s);
  if (runs_decode_layers(c, opt)) {
    std::vector<DecodeLayerWeights> table;
    for (int i = 0; i < c.num_hidden_layers; ++i) {
      const Layer& l = m->layers_[i];
      auto weight = [](const DeviceLinear& lin) { return Fp8Weight{lin.weight.as<fp8_e4m3>(), lin.scales.as<float>()}; };
      table.push_back({l.input_layernorm.as<bf16>(), l.post_attention_layernorm.as<bf16>(), l.q_norm.as<bf16>(),
                       l.k_norm.as<bf16>(), weight(l.qkv), weight(l.o), weight(l.gate_up), weight(l.down),
                       m->kv_cache_->k(i), m->kv_cache_->v(i)});
    }
    FP8LM_RETURN_IF_ERROR(BackendBuffer::from_host(b, table.data(), table.size() * sizeof(DecodeLayerWeights),
                                                   &m->decode_layer_table_));
  }
  FP8LM_RETURN_IF_ERROR(b.synchronize());
  *out = std::move(m);
  return Status::Ok();
}

Status Qwen3Model::check_append(std::span<const std::int32_t> tokens, const char* fn) const {
  if (tokens.empty()) return Status::Error(std::string(fn) + ": no tokens");
  if (length_ + static_cast<long long>(tokens.size()) > max_context_)
    return Status::Error(std::string(fn) + ": " + std::to_string(length_) + " tokens in context + " +
                         std::to_string(tokens.size()) + " new exceed the context length " + std::to_string(max_context_));
  for (std::size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= config_.vocab_size)
      return Status::Error(std::string(fn) + ": token id " + std::to_string(tokens[i]) + " at index " +
                           std::to_string(i) + " is outside the vocabulary [0, " + std::to_string(config_.vocab_size) + ")");
  return Status::Ok();
}

Status Qwen3Model::forward(std::span<const std::int32_t> tokens, bool all_logits, std::vector<float>* logits) {
  FP8LM_RETURN_IF_ERROR(check_append(tokens, "forward"));
  const std::size_t vocab = config_.vocab_size;
  // Every element is written below; resize (a no-op on every decode step) rather than assign, which
  // would zero 151936 floats per generated token first.
  logits->resize(all_logits ? tokens.size() * vocab : vocab);
  const int start = length_;
  FP8LM_RETURN_IF_ERROR(sequence_->reserve(start + static_cast<int>(tokens.size())));
  const Status s = forward_reserved(tokens, all_logits, logits->data());
  if (!s.ok()) truncate(start);  // the cache rows past `start` are simply overwritten next time
  return s;
}

Status Qwen3Model::forward_reserved(std::span<const std::int32_t> tokens, bool all_logits, float* logits) {
  if (tokens.size() == 1 && use_decode_graph_) return decode_with_graph(tokens[0], logits);
  const std::size_t vocab = config_.vocab_size;
  for (std::size_t done = 0; done < tokens.size(); done += max_batch_tokens_) {
    const std::size_t count = std::min<std::size_t>(max_batch_tokens_, tokens.size() - done);
    const bool last_chunk = done + count == tokens.size();
    float* dst = all_logits ? logits + done * vocab : (last_chunk ? logits : nullptr);
    FP8LM_RETURN_IF_ERROR(forward_chunk(tokens.subspan(done, count), all_logits, dst));
  }
  return Status::Ok();
}

void Qwen3Model::truncate(int length) {
  length_ = std::min(length_, std::max(0, length));
  sequence_->truncate(length_);
}

// The layers of transformers' Qwen3 on n tokens. A layer's norms are fused with the residual add
// before them and the FP8 quantization after them (rmsnorm_quantize, bit for bit the unfused
// chain), and the closing residual add of a layer (the dense MLP's add, or the MoE combine) also
// computes the next layer's input norm; a dense layer is then 9 launches: qkv GEMM, qk_norm_rope,
// attention (+1 to merge key splits; it also quantizes the o projection's input), o GEMM,
// add+norm+quantize, gate_up GEMM, silu_mul_quantize, down GEMM, add+norm+quantize; at decode (up
// to 16 tokens) 7: the attention op does qk_norm_rope (one token) and the gate_up GEMM
// silu_mul_quantize (one launch each on sm_90). A MoE layer 12 (decode 10): the same up to the
// second norm, then router, route+plan, gathered quantize, grouped gate_up, silu_mul_quantize (at
// decode in the gate_up's launch), grouped down, combine+norm+quantize. (The o and down GEMMs with
// the add + norm in their last CTA, and router + route + plan + quantize in one launch, were
// measured slower on an H200 and removed: docs/engine.md, "Decode fusions".) One token of a dense
// model (uses_decode_layers()) runs every layer as one op instead: the same ops' semantics in one
// persistent kernel on a GPU (fp8lm/decode_layers.h).
Status Qwen3Model::enqueue_layers(int n, const std::int32_t* ids, int start_pos, const int* start_pos_ptr) {
  const Qwen3Config& c = config_;
  Backend& b = backend_;
  Scratch& s = *scratch_;
  const int hidden = c.hidden_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  bf16* x = s.x.as<bf16>();
  bf16* h = s.h.as<bf16>();
  bf16* qkv = s.qkv.as<bf16>();
  bf16* out = s.out.as<bf16>();
  fp8_e4m3* q8 = s.q8.as<fp8_e4m3>();
  float* q8s = s.q8_scales.as<float>();
  // The rows the block table maps. A recorded step (start_pos_ptr) runs at positions up to its
  // bound start_pos, each mapped by forward() before the replay: it is checked against the whole
  // table.
  const int cache_capacity = start_pos_ptr == nullptr ? sequence_->capacity() : sequence_->max_rows();
  const std::int32_t* block_table = sequence_->device_table();

  // y[rows, lin.n] = q8[rows, lin.k] . lin^T, the input already quantized.
  // y = lin(input) for `rows` rows whose input is quantized in in_q8 / in_scales (default: q8).
  auto gemm = [&](const DeviceLinear& lin, bf16* y, int rows, const fp8_e4m3* in_q8 = nullptr,
                  const float* in_scales = nullptr) {
    return b.gemm({in_q8 ? in_q8 : q8, in_scales ? in_scales : q8s, lin.weight.as<fp8_e4m3>(), lin.scales.as<float>(),
                   y, rows, lin.n, lin.k});
  };
  // The MLPs' quantized SiLU(gate)·up: at decode (fused_act) gate_up and the activation are one op
  // (one launch on sm_90) that writes it while the GEMM still reads q8, so it goes to act_q8;
  // otherwise silu_mul_quantize overwrites q8 after the GEMM.
  const bool fused_act = n <= kGateUpSwigluMaxRows;
  fp8_e4m3* act = fused_act ? s.act_q8.as<fp8_e4m3>() : q8;
  float* act_scales = fused_act ? s.act_scales.as<float>() : q8s;
  // x += down(silu(gate(in)) * up(in)) for the n rows whose input is quantized in q8 (dense MLP),
  // then next_norm of x quantized into q8 (the last layer: the add alone).
  auto swiglu = [&](const DeviceLinear& gate_up, const DeviceLinear& down, const bf16* next_norm) {
    bf16* mlp = s.mlp.as<bf16>();
    if (fused_act) {
      FP8LM_RETURN_IF_ERROR(b.gate_up_swiglu(
          {{q8, q8s, gate_up.weight.as<fp8_e4m3>(), gate_up.scales.as<float>(), mlp, n, gate_up.n, gate_up.k},
           {mlp, act, act_scales, n, down.k},
           s.swiglu_counters.as<int>()}));
    } else {
      FP8LM_RETURN_IF_ERROR(gemm(gate_up, mlp, n));
      FP8LM_RETURN_IF_ERROR(b.silu_mul_quantize({mlp, q8, q8s, n, down.k}));
    }
    FP8LM_RETURN_IF_ERROR(gemm(down, out, n, act, act_scales));
    if (next_norm == nullptr) return b.add({x, out, static_cast<std::size_t>(n) * hidden});
    return b.rmsnorm_quantize({x, out, next_norm, nullptr, q8, q8s, n, hidden, eps});
  };
  // The sparse block on the normed input h (transformers' Qwen3MoeSparseMoeBlock), added to x;
  // with next_norm, the next layer's input norm of x quantized into q8 too (fused into the combine).
  auto sparse_mlp = [&](const Layer& l, const bf16* next_norm) {
    const int experts = c.num_experts, top_k = c.num_experts_per_tok, pairs = n * top_k;
    // The router is a bf16 Linear: fp32 GEMM (the lm_head op), rounded to bf16 inside moe_route.
    FP8LM_RETURN_IF_ERROR(b.lm_head({h, l.router.as<bf16>(), s.router_logits.as<float>(), n, hidden, experts}));
    // Routing, then which rows each expert runs, planned on the backend (one launch at decode):
    // nothing in a layer waits for the host, so the decode graph records MoE layers too.
    std::int32_t* offsets = s.expert_offsets.as<std::int32_t>();
    FP8LM_RETURN_IF_ERROR(b.moe_route_plan(
        {s.router_logits.as<float>(), s.routed_experts.as<std::int32_t>(), s.routed_weights.as<bf16>(), n, experts,
         top_k, c.norm_topk_prob},
        {s.routed_experts.as<std::int32_t>(), s.routed_weights.as<bf16>(), offsets, s.gather_rows.as<std::int32_t>(),
         s.combine_slots.as<std::int32_t>(), s.combine_weights.as<bf16>(), n, top_k, experts}));
    bf16* expert_out = s.expert_out.as<bf16>();
    bf16* mlp = s.mlp.as<bf16>();
    // Every expert's rows at once. A token picks an expert at most once, so n bounds any expert's
    // rows without looking at the routing.
    // The plan is at least two launches back (the gathered quantize comes between), so the GEMMs
    // may read the offsets and start their experts' weights before their predecessor ends.
    auto grouped = [&](const DeviceLinear& lin, bf16* y, const fp8_e4m3* in_q8, const float* in_scales) {
      return b.grouped_gemm({in_q8, in_scales, lin.weight.as<fp8_e4m3>(), lin.scales.as<float>(), offsets, y, pairs,
                             experts, lin.n, lin.k, n, /*offsets_settled=*/true});
    };
    // quantize and silu_mul_quantize work row by row, so all rows at once equal expert by expert;
    // the quantize gathers the normed rows into expert order (moe_plan's gather_rows) as it reads.
    FP8LM_RETURN_IF_ERROR(b.quantize({h, q8, q8s, pairs, hidden, s.gather_rows.as<std::int32_t>(), n}));
    // gate_up and the activation (fused_act above).
    const DeviceLinear& gate_up = l.experts_gate_up;
    if (fused_act) {
      FP8LM_RETURN_IF_ERROR(b.grouped_gate_up_swiglu(
          {{q8, q8s, gate_up.weight.as<fp8_e4m3>(), gate_up.scales.as<float>(), offsets, mlp, pairs, experts, gate_up.n,
            gate_up.k, n, /*offsets_settled=*/true},
           {mlp, act, act_scales, pairs, c.moe_intermediate_size},
           s.swiglu_counters.as<int>()}));
    } else {
      FP8LM_RETURN_IF_ERROR(grouped(gate_up, mlp, q8, q8s));
      FP8LM_RETURN_IF_ERROR(b.silu_mul_quantize({mlp, q8, q8s, pairs, c.moe_intermediate_size}));
    }
    FP8LM_RETURN_IF_ERROR(grouped(l.experts_down, expert_out, act, act_scales));
    MoeCombineArgs combine{x, expert_out, s.combine_slots.as<std::int32_t>(), s.combine_weights.as<bf16>(), n, top_k,
                           hidden, pairs};
    if (next_norm != nullptr) combine.norm_weight = next_norm, combine.q8 = q8, combine.q8_scales = q8s, combine.eps = eps;
    return b.moe_combine(combine);
  };

  FP8LM_RETURN_IF_ERROR(b.embed({ids, embed_tokens_.as<bf16>(), x, n, c.vocab_size, hidden}));
  if (n == 1 && uses_decode_layers()) {
    DecodeLayersArgs step{decode_layer_table_.as<DecodeLayerWeights>(), c.num_hidden_layers, x, hidden,
                          c.intermediate_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim, eps,
                          static_cast<float>(c.rope_theta), 1.0f / std::sqrt(static_cast<float>(c.head_dim)),
                          block_table, kKvPageSize, cache_capacity, start_pos, start_pos_ptr};
    step.workspace = s.decode_workspace.as<void>(), step.workspace_bytes = s.decode_workspace.bytes();
    return b.decode_layers(step);
  }
  bool input_normed = false;  // q8 already holds this layer's quantized input norm (fused above)
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = layers_[i];
    // Attention block.
    if (!input_normed)
      FP8LM_RETURN_IF_ERROR(
          b.rmsnorm_quantize({x, nullptr, l.input_layernorm.as<bf16>(), nullptr, q8, q8s, n, hidden, eps}));
    FP8LM_RETURN_IF_ERROR(gemm(l.qkv, qkv, n));
    bf16* k_cache = kv_cache_->k(static_cast<int>(i));
    bf16* v_cache = kv_cache_->v(static_cast<int>(i));
    QkNormRopeArgs rope{qkv, l.q_norm.as<bf16>(), l.k_norm.as<bf16>(), k_cache, v_cache, block_table, kKvPageSize,
                        n, start_pos, cache_capacity, c.num_attention_heads, c.num_key_value_heads, c.head_dim, eps,
                        static_cast<float>(c.rope_theta)};
    rope.start_pos_ptr = start_pos_ptr;
    // One token (decode): the attention op does qk_norm_rope itself (on the GPU inside its kernel).
    if (n != 1) FP8LM_RETURN_IF_ERROR(b.qk_norm_rope(rope));
    AttentionArgs attn{qkv, k_cache, v_cache, block_table, kKvPageSize, h, n, start_pos, cache_capacity,
                       c.num_attention_heads, c.num_key_value_heads, c.head_dim,
                       1.0f / std::sqrt(static_cast<float>(c.head_dim)), s.attention_workspace.as<float>(),
                       s.attention_workspace.bytes()};
    attn.start_pos_ptr = start_pos_ptr;
    attn.q8 = q8, attn.q8_scales = q8s;  // the o projection's input, quantized by the attention kernels
    if (n == 1) attn.rope = &rope;
    FP8LM_RETURN_IF_ERROR(b.attention(attn));
    FP8LM_RETURN_IF_ERROR(gemm(l.o, out, n));
    // x += attention output, then the MLP's input norm: quantized for the dense gate_up, bf16 for
    // the MoE router (whose experts quantize their gathered rows).
    const bool moe = c.is_moe_layer(static_cast<int>(i));
    FP8LM_RETURN_IF_ERROR(b.rmsnorm_quantize({x, out, l.post_attention_layernorm.as<bf16>(), moe ? h : nullptr,
                                              moe ? nullptr : q8, moe ? nullptr : q8s, n, hidden, eps}));
    const bf16* next_norm = i + 1 < layers_.size() ? layers_[i + 1].input_layernorm.as<bf16>() : nullptr;
    if (moe) {
      FP8LM_RETURN_IF_ERROR(sparse_mlp(l, next_norm));  // adds into x itself (and norms it for the next layer)
      input_normed = next_norm != nullptr;
      continue;
    }
    // x += MLP output, then (fused) the next layer's input norm; the final norm runs on the rows
    // whose logits are wanted only.
    FP8LM_RETURN_IF_ERROR(swiglu(l.gate_up, l.down, next_norm));
    input_normed = next_norm != nullptr;
  }
  return Status::Ok();
}

// The final RMSNorm of `rows` residual rows into the scratch's h (the lm_head's input).
Status Qwen3Model::final_norm(const bf16* x_rows, int rows) {
  const int hidden = config_.hidden_size;
  return backend_.rmsnorm({x_rows, norm_.as<bf16>(), scratch_->h.as<bf16>(), rows, hidden, hidden, hidden,
                           static_cast<float>(config_.rms_norm_eps)});
}

const bf16* Qwen3Model::head_weights() const { return (lm_head_.bytes() ? lm_head_ : embed_tokens_).as<bf16>(); }

// One chunk of n <= max_batch_tokens tokens at positions length_ .. length_ + n - 1. Writes the
// logits of every token (all_logits) or of the last one to `logits` when it is not null.
Status Qwen3Model::forward_chunk(std::span<const std::int32_t> tokens, bool all_logits, float* logits) {
  const Qwen3Config& c = config_;
  Backend& b = backend_;
  Scratch& s = *scratch_;
  const int n = static_cast<int>(tokens.size());
  const int hidden = c.hidden_size;
  FP8LM_RETURN_IF_ERROR(b.upload(s.tokens.as<std::int32_t>(), tokens.data(), n * sizeof(std::int32_t)));
  FP8LM_RETURN_IF_ERROR(enqueue_layers(n, s.tokens.as<std::int32_t>(), length_, nullptr));
  length_ += n;
  if (logits == nullptr) return b.synchronize();

  // Final norm and lm_head, for every token or only the last one.
  const int rows = all_logits ? n : 1;
  bf16* h = s.h.as<bf16>();
  const bf16* last = s.x.as<bf16>() + static_cast<std::size_t>(n - rows) * hidden;
  FP8LM_RETURN_IF_ERROR(final_norm(last, rows));
  const bf16* head = head_weights();
  for (int r = 0; r < rows; r += kLogitsRows) {
    const int count = std::min(kLogitsRows, rows - r);
    const std::size_t offset = static_cast<std::size_t>(r) * c.vocab_size;
    FP8LM_RETURN_IF_ERROR(b.lm_head({h + static_cast<std::size_t>(r) * hidden, head, s.logits.as<float>(), count, hidden,
                                     c.vocab_size}));
    FP8LM_RETURN_IF_ERROR(
        b.download(logits + offset, s.logits.as<float>(), static_cast<std::size_t>(count) * c.vocab_size * sizeof(float)));
  }
  return Status::Ok();
}

// The first single-token forward runs eagerly: per-shape setup that must not happen inside a
// capture (the cuBLASLt plan of a one-row lm_head, GEMM kernel attributes and occupancy queries
// done once per process) happens there. The second captures the graph, every later one replays it.
// The recorded ops are those of forward_chunk for one token, reading the position from device
// memory, so replays compute the same bits as the eager path (kernels/attention/attention.cu
// explains why attention's key split is the same too).
Status Qwen3Model::decode_with_graph(std::int32_t token, float* logits) {
  const Qwen3Config& c = config_;
  Backend& b = backend_;
  if (!decode_warmed_up_) {
    const std::int32_t ids[1] = {token};
    FP8LM_RETURN_IF_ERROR(forward_chunk(ids, false, logits));
    decode_warmed_up_ = true;
    return Status::Ok();
  }
  const std::size_t logits_bytes = static_cast<std::size_t>(c.vocab_size) * sizeof(float);
  if (!decode_graph_) {
    auto g = std::make_unique<DecodeGraph>();
    FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate_host(b, 2 * sizeof(std::int32_t), &g->step_host));
    FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate(b, 2 * sizeof(std::int32_t), &g->step));
    FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate_host(b, logits_bytes, &g->logits_host));
    auto record = [&]() -> Status {
      FP8LM_RETURN_IF_ERROR(b.upload(g->step.as<std::int32_t>(), g->step_host.as<std::int32_t>(), g->step.bytes()));
      FP8LM_RETURN_IF_ERROR(enqueue_recorded_step(g->step.as<std::int32_t>()));
      return b.download_async(g->logits_host.as<float>(), scratch_->logits.as<float>(), logits_bytes);
    };
    FP8LM_RETURN_IF_ERROR(b.capture_graph(record, &g->graph));
    decode_graph_ = std::move(g);
  }
  DecodeGraph& g = *decode_graph_;
  g.step_host.as<std::int32_t>()[0] = token;
  g.step_host.as<std::int32_t>()[1] = length_;
  FP8LM_RETURN_IF_ERROR(g.graph->launch());
  FP8LM_RETURN_IF_ERROR(b.synchronize());
  std::memcpy(logits, g.logits_host.as<float>(), logits_bytes);
  length_ += 1;
  return Status::Ok();
}

Status Qwen3Model::enqueue_recorded_step(const std::int32_t* step) {
  const Qwen3Config& c = config_;
  Scratch& s = *scratch_;
  // The position bound max_context_ - 1 sizes attention's key splits for the whole context.
  FP8LM_RETURN_IF_ERROR(enqueue_layers(1, step, max_context_ - 1, step + 1));
  FP8LM_RETURN_IF_ERROR(final_norm(s.x.as<bf16>(), 1));
  return backend_.lm_head({s.h.as<bf16>(), head_weights(), s.logits.as<float>(), 1, c.hidden_size, c.vocab_size});
}

Status Qwen3Model::enqueue_greedy_step(const GreedyDecode& g) {
  std::int32_t* step = g.step.as<std::int32_t>();
  FP8LM_RETURN_IF_ERROR(enqueue_recorded_step(step));
  return backend_.greedy_token({scratch_->logits.as<float>(), config_.vocab_size, step,
                                g.tokens_host.as<std::int32_t>(), GreedyDecode::kRing});
}

// The first step runs eagerly and the second captures the graph, as in decode_with_graph (the
// eager step does the per-shape setup a capture must not do; the capture waits for it first).
Status Qwen3Model::launch_greedy_step(int position, int slot) {
  GreedyDecode& g = *greedy_;
  FP8LM_RETURN_IF_ERROR(sequence_->reserve(position + 1));
  if (use_decode_graph_ && decode_warmed_up_ && !g.graph) {
    FP8LM_RETURN_IF_ERROR(backend_.synchronize());
    FP8LM_RETURN_IF_ERROR(backend_.capture_graph([&] { return enqueue_greedy_step(g); }, &g.graph));
  }
  if (g.graph) {
    FP8LM_RETURN_IF_ERROR(g.graph->launch());
  } else {
    FP8LM_RETURN_IF_ERROR(enqueue_greedy_step(g));
    decode_warmed_up_ = true;
  }
  return backend_.mark(slot);
}

Status Qwen3Model::generate_greedy(std::int32_t token, int max_tokens,
                                   const std::function<bool(std::int32_t)>& on_token) {
  if (max_tokens < 1) return Status::Error("generate_greedy: max_tokens must be >= 1");
  FP8LM_RETURN_IF_ERROR(check_append(std::span<const std::int32_t>(&token, 1), "generate_greedy"));
  if (!greedy_) {
    auto g = std::make_unique<GreedyDecode>();
    FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate(backend_, 2 * sizeof(std::int32_t), &g->step));
    FP8LM_RETURN_IF_ERROR(
        BackendBuffer::allocate_host(backend_, GreedyDecode::kRing * sizeof(std::int32_t), &g->tokens_host));
    greedy_ = std::move(g);
  }
  const int start = length_;
  const int limit = std::min(max_tokens, max_context_ - start);  // a forward per chosen token
  const std::int32_t first[2] = {token, start};
  FP8LM_RETURN_IF_ERROR(backend_.upload(greedy_->step.as<std::int32_t>(), first, sizeof first));

  constexpr int kSlots = Backend::kMarkSlots;
  static_assert(kSlots >= 2 && GreedyDecode::kRing >= kSlots, "two steps in flight");
  int launched = 0, chosen = 0;
  Status status = launch_greedy_step(start, 0);
  if (status.ok()) launched = 1;
  while (status.ok() && chosen < limit) {
    if (launched < limit) {  // step chosen + 1, ahead of the host
      status = launch_greedy_step(start + launched, launched % kSlots);
      if (!status.ok()) break;
      ++launched;
    }
    status = backend_.wait_mark(chosen % kSlots);
    if (!status.ok()) break;
    const std::int32_t id = greedy_->tokens_host.as<std::int32_t>()[(start + chosen) % GreedyDecode::kRing];
    ++chosen;
    if (!on_token(id)) break;
  }
  // The step run ahead writes KV rows past the end: it finishes before those pages are released.
  const Status synced = backend_.synchronize();
  length_ = start + chosen;
  sequence_->truncate(length_);
  return status.ok() ? synced : status;
}

}  // namespace fp8lm
