#include "engine/model/qwen3_model.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace fp8lm {

namespace {

std::size_t fp8_linear_bytes(int n, int k) {
  return static_cast<std::size_t>(n) * k + sizeof(float) * static_cast<std::size_t>(ceil_div(n, kQuantGroup)) *
                                               ceil_div(k, kQuantGroup);
}

std::string gib(std::size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / double(1ull << 30));
  return buf;
}

}  // namespace

// One FP8 linear on the backend.
struct DeviceLinear {
  BackendBuffer weight, scales;
  int n = 0, k = 0;

  static Status upload(Backend& b, const Fp8Linear& w, const char* name, int layer, DeviceLinear* out) {
    if (w.weight.size() != static_cast<std::size_t>(w.n) * w.k ||
        w.scales.size() != static_cast<std::size_t>(ceil_div(w.n, kQuantGroup)) * ceil_div(w.k, kQuantGroup))
      return Status::Error("layer " + std::to_string(layer) + " " + name + ": weight or scale size does not match [" +
                           std::to_string(w.n) + ", " + std::to_string(w.k) + "]");
    out->n = w.n, out->k = w.k;
    FP8LM_RETURN_IF_ERROR(BackendBuffer::from_host(b, w.weight.data(), w.weight.size(), &out->weight));
    return BackendBuffer::from_host(b, w.scales.data(), w.scales.size() * sizeof(float), &out->scales);
  }
};

struct Qwen3Model::Layer {
  BackendBuffer input_layernorm, post_attention_layernorm, q_norm, k_norm;
  DeviceLinear qkv, o, gate_up, down;
  BackendBuffer k_cache, v_cache;  // [max_context, kv_width] bf16
};

// Activations for a chunk of up to max_batch_tokens tokens.
struct Qwen3Model::Scratch {
  BackendBuffer tokens;       // int32 [T]
  BackendBuffer x;            // bf16 [T, hidden]: the residual stream
  BackendBuffer h;            // bf16 [T, max(hidden, q_width)]: normed input / attention output
  BackendBuffer q8;           // fp8 [T, max(hidden, q_width, inter)]: a GEMM input, quantized
  BackendBuffer q8_scales;    // fp32 [T, ceil(max width / 128)]
  BackendBuffer qkv;          // bf16 [T, qkv_width]
  BackendBuffer mlp;          // bf16 [T, 2 inter]: gate_up output
  BackendBuffer act;          // bf16 [T, inter]
  BackendBuffer out;          // bf16 [T, hidden]: a GEMM output before the residual add
  BackendBuffer logits;       // fp32 [T, vocab]
  BackendBuffer attention_workspace;  // lets decode attention split long contexts over the SMs
};

namespace {
// Attention splits keys only when few (token, head) blocks would run: size the workspace for that.
constexpr int kAttentionWorkspaceTokens = 16;
}  // namespace

ModelMemory model_memory(const Qwen3Config& c, const ModelOptions& options) {
  ModelMemory m;
  const int ctx = options.max_context > 0 ? options.max_context : c.max_position_embeddings;
  const std::size_t per_layer = fp8_linear_bytes(c.qkv_width(), c.hidden_size) +
                                fp8_linear_bytes(c.hidden_size, c.q_width()) +
                                fp8_linear_bytes(2 * c.intermediate_size, c.hidden_size) +
                                fp8_linear_bytes(c.hidden_size, c.intermediate_size) +
                                2 * (2 * static_cast<std::size_t>(c.hidden_size) + 2 * c.head_dim);
  const std::size_t embed = 2 * static_cast<std::size_t>(c.vocab_size) * c.hidden_size;
  m.weights = per_layer * c.num_hidden_layers + embed * (c.tie_word_embeddings ? 1 : 2) + 2 * c.hidden_size;
  m.kv_cache = 2 * 2 * static_cast<std::size_t>(ctx) * c.kv_width() * c.num_hidden_layers;
  const std::size_t t = options.max_batch_tokens;
  const std::size_t widest = std::max({c.hidden_size, c.q_width(), c.intermediate_size});
  m.scratch = t * (4 + 2 * c.hidden_size + 2 * widest + widest + 4 * ceil_div(static_cast<int>(widest), kQuantGroup) +
                   2 * c.qkv_width() + 2 * 2 * c.intermediate_size + 2 * c.intermediate_size + 2 * c.hidden_size +
                   4 * static_cast<std::size_t>(c.vocab_size)) +
              attention_workspace_bytes(kAttentionWorkspaceTokens, c.num_attention_heads);
  return m;
}

Qwen3Model::Qwen3Model(const Qwen3Config& config, Backend& backend) : config_(config), backend_(backend) {}
Qwen3Model::~Qwen3Model() = default;

Status Qwen3Model::create(const Qwen3Weights& w, Backend& b, const ModelOptions& options,
                          std::unique_ptr<Qwen3Model>* out) {
  const Qwen3Config& c = w.config;
  if (c.is_moe()) return Status::Error("model: Qwen3-MoE (" + c.model_type + ") is not supported yet");
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
  auto bf16_vec = [&](const std::vector<bf16>& v, std::size_t expect, const std::string& name, BackendBuffer* buf) {
    if (v.size() != expect)
      return Status::Error("model: " + name + " has " + std::to_string(v.size()) + " values, expected " + std::to_string(expect));
    return BackendBuffer::from_host(b, v.data(), v.size() * sizeof(bf16), buf);
  };
  const std::size_t embed_count = static_cast<std::size_t>(c.vocab_size) * c.hidden_size;
  FP8LM_RETURN_IF_ERROR(bf16_vec(w.embed_tokens, embed_count, "embed_tokens", &m->embed_tokens_));
  FP8LM_RETURN_IF_ERROR(bf16_vec(w.norm, c.hidden_size, "norm", &m->norm_));
  if (!w.lm_head.empty()) FP8LM_RETURN_IF_ERROR(bf16_vec(w.lm_head, embed_count, "lm_head", &m->lm_head_));

  const std::size_t kv_bytes = 2 * static_cast<std::size_t>(opt.max_context) * c.kv_width();
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
    FP8LM_RETURN_IF_ERROR(DeviceLinear::upload(b, lw.qkv, "qkv", i, &l.qkv));
    FP8LM_RETURN_IF_ERROR(DeviceLinear::upload(b, lw.o, "o_proj", i, &l.o));
    FP8LM_RETURN_IF_ERROR(DeviceLinear::upload(b, lw.gate_up, "gate_up", i, &l.gate_up));
    FP8LM_RETURN_IF_ERROR(DeviceLinear::upload(b, lw.down, "down_proj", i, &l.down));
    if (l.qkv.n != c.qkv_width() || l.qkv.k != c.hidden_size || l.o.n != c.hidden_size || l.o.k != c.q_width() ||
        l.gate_up.n != 2 * c.intermediate_size || l.gate_up.k != c.hidden_size || l.down.n != c.hidden_size ||
        l.down.k != c.intermediate_size)
      return Status::Error("model: " + at + "linear shapes do not match the config");
    FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate(b, kv_bytes, &l.k_cache));
    FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate(b, kv_bytes, &l.v_cache));
  }

  auto s = std::make_unique<Scratch>();
  const std::size_t t = opt.max_batch_tokens;
  const std::size_t widest = std::max({c.hidden_size, c.q_width(), c.intermediate_size});
  FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate(b, t * sizeof(std::int32_t), &s->tokens));
  FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate(b, t * c.hidden_size * sizeof(bf16), &s->x));
  FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate(b, t * std::max(c.hidden_size, c.q_width()) * sizeof(bf16), &s->h));
  FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate(b, t * widest, &s->q8));
  FP8LM_RETURN_IF_ERROR(
      BackendBuffer::allocate(b, t * ceil_div(static_cast<int>(widest), kQuantGroup) * sizeof(float), &s->q8_scales));
  FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate(b, t * c.qkv_width() * sizeof(bf16), &s->qkv));
  FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate(b, t * 2 * c.intermediate_size * sizeof(bf16), &s->mlp));
  FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate(b, t * c.intermediate_size * sizeof(bf16), &s->act));
  FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate(b, t * c.hidden_size * sizeof(bf16), &s->out));
  FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate(b, t * static_cast<std::size_t>(c.vocab_size) * sizeof(float), &s->logits));
  FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate(
      b, attention_workspace_bytes(kAttentionWorkspaceTokens, c.num_attention_heads), &s->attention_workspace));
  m->scratch_ = std::move(s);
  FP8LM_RETURN_IF_ERROR(b.synchronize());
  *out = std::move(m);
  return Status::Ok();
}

Status Qwen3Model::forward(std::span<const std::int32_t> tokens, bool all_logits, std::vector<float>* logits) {
  if (tokens.empty()) return Status::Error("forward: no tokens");
  if (length_ + static_cast<long long>(tokens.size()) > max_context_)
    return Status::Error("forward: " + std::to_string(length_) + " tokens in context + " + std::to_string(tokens.size()) +
                         " new exceed the context length " + std::to_string(max_context_));
  for (std::size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= config_.vocab_size)
      return Status::Error("forward: token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                           " is outside the vocabulary [0, " + std::to_string(config_.vocab_size) + ")");
  const std::size_t vocab = config_.vocab_size;
  logits->assign(all_logits ? tokens.size() * vocab : vocab, 0.0f);
  const int start = length_;
  for (std::size_t done = 0; done < tokens.size(); done += max_batch_tokens_) {
    const std::size_t count = std::min<std::size_t>(max_batch_tokens_, tokens.size() - done);
    const bool last_chunk = done + count == tokens.size();
    float* dst = all_logits ? logits->data() + done * vocab : (last_chunk ? logits->data() : nullptr);
    const Status s = forward_chunk(tokens.subspan(done, count), all_logits, dst);
    if (!s.ok()) {
      length_ = start;  // the cache rows past `start` are simply overwritten next time
      return s;
    }
  }
  return Status::Ok();
}

// One chunk of n <= max_batch_tokens tokens at positions length_ .. length_ + n - 1. Writes the
// logits of every token (all_logits) or of the last one to `logits` when it is not null.
Status Qwen3Model::forward_chunk(std::span<const std::int32_t> tokens, bool all_logits, float* logits) {
  const Qwen3Config& c = config_;
  Backend& b = backend_;
  Scratch& s = *scratch_;
  const int n = static_cast<int>(tokens.size());
  const int hidden = c.hidden_size, inter = c.intermediate_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  bf16* x = s.x.as<bf16>();
  bf16* h = s.h.as<bf16>();
  bf16* qkv = s.qkv.as<bf16>();
  bf16* out = s.out.as<bf16>();
  fp8_e4m3* q8 = s.q8.as<fp8_e4m3>();
  float* q8s = s.q8_scales.as<float>();

  // y[n, lin.n] = quantize(in[n, lin.k]) . lin^T
  auto linear = [&](const bf16* in, const DeviceLinear& lin, bf16* y) {
    FP8LM_RETURN_IF_ERROR(b.quantize({in, q8, q8s, n, lin.k}));
    return b.gemm({q8, q8s, lin.weight.as<fp8_e4m3>(), lin.scales.as<float>(), y, n, lin.n, lin.k});
  };

  FP8LM_RETURN_IF_ERROR(b.upload(s.tokens.as<std::int32_t>(), tokens.data(), n * sizeof(std::int32_t)));
  FP8LM_RETURN_IF_ERROR(b.embed({s.tokens.as<std::int32_t>(), embed_tokens_.as<bf16>(), x, n, c.vocab_size, hidden}));
  for (const Layer& l : layers_) {
    // Attention block.
    FP8LM_RETURN_IF_ERROR(b.rmsnorm({x, l.input_layernorm.as<bf16>(), h, n, hidden, hidden, hidden, eps}));
    FP8LM_RETURN_IF_ERROR(linear(h, l.qkv, qkv));
    FP8LM_RETURN_IF_ERROR(b.qk_norm_rope({qkv, l.q_norm.as<bf16>(), l.k_norm.as<bf16>(), l.k_cache.as<bf16>(),
                                          l.v_cache.as<bf16>(), n, length_, max_context_, c.num_attention_heads,
                                          c.num_key_value_heads, c.head_dim, eps, static_cast<float>(c.rope_theta)}));
    FP8LM_RETURN_IF_ERROR(b.attention({qkv, l.k_cache.as<bf16>(), l.v_cache.as<bf16>(), h, n, length_,
                                       c.num_attention_heads, c.num_key_value_heads, c.head_dim,
                                       1.0f / std::sqrt(static_cast<float>(c.head_dim)),
                                       s.attention_workspace.as<float>(), s.attention_workspace.bytes()}));
    FP8LM_RETURN_IF_ERROR(linear(h, l.o, out));
    FP8LM_RETURN_IF_ERROR(b.add({x, out, static_cast<std::size_t>(n) * hidden}));
    // MLP block.
    FP8LM_RETURN_IF_ERROR(b.rmsnorm({x, l.post_attention_layernorm.as<bf16>(), h, n, hidden, hidden, hidden, eps}));
    FP8LM_RETURN_IF_ERROR(linear(h, l.gate_up, s.mlp.as<bf16>()));
    FP8LM_RETURN_IF_ERROR(b.silu_mul({s.mlp.as<bf16>(), s.act.as<bf16>(), n, inter}));
    FP8LM_RETURN_IF_ERROR(linear(s.act.as<bf16>(), l.down, out));
    FP8LM_RETURN_IF_ERROR(b.add({x, out, static_cast<std::size_t>(n) * hidden}));
  }
  length_ += n;
  if (logits == nullptr) return b.synchronize();

  // Final norm and lm_head, for every token or only the last one.
  const int rows = all_logits ? n : 1;
  const bf16* last = x + static_cast<std::size_t>(n - rows) * hidden;
  FP8LM_RETURN_IF_ERROR(b.rmsnorm({last, norm_.as<bf16>(), h, rows, hidden, hidden, hidden, eps}));
  const bf16* head = (lm_head_.bytes() ? lm_head_ : embed_tokens_).as<bf16>();
  FP8LM_RETURN_IF_ERROR(b.lm_head({h, head, s.logits.as<float>(), rows, hidden, c.vocab_size}));
  return b.download(logits, s.logits.as<float>(), static_cast<std::size_t>(rows) * c.vocab_size * sizeof(float));
}

}  // namespace fp8lm
