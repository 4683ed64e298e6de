#include "engine/checkpoint/dummy_weights.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "fp8lm/parallel.h"
#include "engine/checkpoint/qwen3_presets.h"
#include "engine/checkpoint/qwen3_tensor_names.h"
#include "fp8lm/cpu.h"
#include "fp8lm/random.h"

namespace fp8lm {

namespace {

constexpr int kQuantiles = 65536;  // one per 16-bit random number
// Tables for the blocks whose most extreme pick is among the kTables outermost quantiles on either
// side; a 128x128 block is there with probability 1 - 1e-7 (smaller ragged blocks may not be, and
// are quantized element by element, with the same result).
constexpr int kTables = 64;
constexpr std::size_t kBf16Chunk = 65536;
constexpr bf16 kOne = {0x3F80};

// The quantiles of N(0, 1) at (u + 0.5) / 65536, by bisection on erfc; symmetric by construction.
const std::vector<float>& normal_quantiles() {
  static const std::vector<float> q = [] {
    std::vector<float> v(kQuantiles);
    for (int u = 0; u < kQuantiles / 2; ++u) {
      const double p = (u + 0.5) / kQuantiles;
      double lo = -12.0, hi = 0.0;
      for (int it = 0; it < 64; ++it) {
        const double mid = 0.5 * (lo + hi);
        (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
      }
      v[u] = static_cast<float>(0.5 * (lo + hi));
      v[kQuantiles - 1 - u] = -v[u];
    }
    return v;
  }();
  return q;
}

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

Rng block_rng(std::uint64_t seed, const std::string& tensor, std::uint64_t block) {
  Rng mix(seed ^ fnv1a(tensor));
  return Rng(mix.next() ^ (block * 0xD1B54A32D192ED03ull));
}

// Draws n 16-bit quantile indices.
void draw(Rng& rng, std::uint16_t* u, std::size_t n) {
  std::size_t i = 0;
  // On a little-endian host the copy puts bits 16b..16b+15 in u[i + b], as the tail loop does.
  static_assert(std::endian::native == std::endian::little);
  for (; i + 4 <= n; i += 4) {
    const std::uint64_t r = rng.next();
    std::memcpy(u + i, &r, sizeof r);
  }
  if (i < n) {
    const std::uint64_t r = rng.next();
    for (int b = 0; i < n; ++i, ++b) u[i] = static_cast<std::uint16_t>(r >> (16 * b));
  }
}

class Generator {
 public:
  Generator(float stddev, std::uint64_t seed) : q_(normal_quantiles()), std_(stddev), seed_(seed) {
    for (int u = 0; u < kQuantiles; ++u) bf16_[u] = float_to_bf16(value(u));
    tables_.resize(static_cast<std::size_t>(kTables) * kQuantiles);
    parallel_for_each(kTables, [&](std::size_t d) {
      const float s = scale_for(static_cast<int>(d));
      for (int u = 0; u < kQuantiles; ++u) tables_[d * kQuantiles + u] = cpu::fp8_encode(value(u) / s);
    });
  }

  // The weight that index u stands for.
  float value(int u) const { return q_[u] * std_; }
  // The BF16 block scale when the most extreme pick is d quantiles from the edge.
  float scale_for(int d) const { return bf16_to_float(float_to_bf16(scale_from_amax(std::fabs(value(d))))); }

  void fill_bf16(const std::string& name, bf16* out, std::size_t n, std::vector<std::function<void()>>* jobs) const {
    for (std::size_t c = 0; c * kBf16Chunk < n; ++c)
      jobs->push_back([=, this] {
        const std::size_t begin = c * kBf16Chunk, count = std::min(kBf16Chunk, n - begin);
        std::vector<std::uint16_t> u(count);
        Rng rng = block_rng(seed_, name, c);
        draw(rng, u.data(), count);
        for (std::size_t i = 0; i < count; ++i) out[begin + i] = bf16_[u[i]];
      });
  }

  // The rows [0, rows) of an FP8 linear with k columns; `weight` and `scales` point at this part's
  // first row and first scale row (rows is a multiple of 128 or the part is the last one).
  void fill_fp8(const std::string& name, int rows, int k, fp8_e4m3* weight, float* scales,
                std::vector<std::function<void()>>* jobs) const {
    const int kb = ceil_div(k, kQuantGroup);
    for (int nb = 0; nb < ceil_div(rows, kQuantGroup); ++nb)
      jobs->push_back([=, this] {
        std::vector<std::uint16_t> u(kQuantGroup * kQuantGroup);
        const int r0 = nb * kQuantGroup, r1 = std::min(rows, r0 + kQuantGroup);
        for (int b = 0; b < kb; ++b) {
          const int c0 = b * kQuantGroup, c1 = std::min(k, c0 + kQuantGroup), w = c1 - c0;
          const std::size_t n = static_cast<std::size_t>(r1 - r0) * w;
          Rng rng = block_rng(seed_, name, static_cast<std::uint64_t>(nb) * kb + b);
          draw(rng, u.data(), n);
          // The most extreme pick: a plain min/max loop (it vectorises; minmax_element does not).
          std::uint16_t lo = 0xFFFF, hi = 0;
          for (std::size_t i = 0; i < n; ++i) {
            lo = std::min(lo, u[i]);
            hi = std::max(hi, u[i]);
          }
          const int d = std::min<int>(lo, kQuantiles - 1 - hi);
          const float s = scale_for(d);
          scales[static_cast<std::size_t>(nb) * kb + b] = s;
          const fp8_e4m3* table = d < kTables ? &tables_[static_cast<std::size_t>(d) * kQuantiles] : nullptr;
          for (int r = r0; r < r1; ++r) {
            fp8_e4m3* dst = weight + static_cast<std::size_t>(r) * k + c0;
            const std::uint16_t* src = u.data() + static_cast<std::size_t>(r - r0) * w;
            if (table != nullptr) {
              for (int c = 0; c < w; ++c) dst[c] = table[src[c]];
            } else {
              for (int c = 0; c < w; ++c) dst[c] = cpu::fp8_encode(value(src[c]) / s);
            }
          }
        }
      });
  }

 private:
  const std::vector<float>& q_;
  float std_;
  std::uint64_t seed_;
  std::array<bf16, kQuantiles> bf16_;
  std::vector<fp8_e4m3> tables_;
};

void allocate_linear(Fp8Linear* l, int n, int k) {
  l->n = n;
  l->k = k;
  l->weight.resize(static_cast<std::size_t>(n) * k);
  l->scales.resize(static_cast<std::size_t>(ceil_div(n, kQuantGroup)) * ceil_div(k, kQuantGroup));
}

}  // namespace

Status make_dummy_qwen3(const Qwen3Config& config, std::uint64_t seed, Qwen3Weights* out) {
  if (config.model_type != "qwen3" && config.model_type != "qwen3_moe")
    return Status::Error("dummy weights: model_type \"" + config.model_type + "\" is not supported (qwen3, qwen3_moe)");
  auto w = std::make_unique<Qwen3Weights>();
  w->config = config;
  const std::size_t hidden = config.hidden_size, vocab = config.vocab_size;
  std::vector<std::vector<FusedLinearSpec>> linears(config.num_hidden_layers);
  for (int i = 0; i < config.num_hidden_layers; ++i) {
    linears[i] = qwen3_layer_linears(config, i);
    for (const FusedLinearSpec& spec : linears[i]) {
      int row = 0;
      for (const LinearPart& part : spec.parts) {
        if (row % kQuantGroup != 0)
          return Status::Error("dummy weights: " + part.module + " starts at row " + std::to_string(row) +
                               " of its fused linear, not a multiple of 128");
        row += part.rows;
      }
    }
  }
  // Allocation zero-fills, so it runs in parallel too (33 GB for the 32B preset).
  w->layers.resize(config.num_hidden_layers);
  parallel_for_each(w->layers.size() + 2, [&](std::size_t i) {
    if (i == w->layers.size()) {
      w->embed_tokens.resize(vocab * hidden);
    } else if (i == w->layers.size() + 1) {
      if (!config.tie_word_embeddings) w->lm_head.resize(vocab * hidden);
    } else {
      Qwen3LayerWeights& layer = w->layers[i];
      if (config.is_moe_layer(static_cast<int>(i))) {
        layer.moe.router.resize(static_cast<std::size_t>(config.num_experts) * hidden);
        layer.moe.experts.resize(config.num_experts);
      }
      for (const FusedLinearSpec& spec : linears[i]) allocate_linear(&spec.of(layer), spec.n(), spec.k);
    }
  });

  const auto gen = std::make_unique<Generator>(kInitializerRange, seed);
  std::vector<std::function<void()>> jobs;
  gen->fill_bf16(kEmbedTokens, w->embed_tokens.data(), w->embed_tokens.size(), &jobs);
  gen->fill_bf16(kLmHead, w->lm_head.data(), w->lm_head.size(), &jobs);
  w->norm.assign(hidden, kOne);
  for (int i = 0; i < config.num_hidden_layers; ++i) {
    Qwen3LayerWeights& layer = w->layers[i];
    for (const LayerNormSpec& norm : qwen3_layer_norms(config)) (layer.*norm.member).assign(norm.size, kOne);
    gen->fill_bf16(layer_module(i, kRouterModule) + kWeightSuffix, layer.moe.router.data(), layer.moe.router.size(),
                   &jobs);
    for (const FusedLinearSpec& spec : linears[i]) {
      Fp8Linear& l = spec.of(layer);
      const int kb = ceil_div(spec.k, kQuantGroup);
      int row = 0;
      for (const LinearPart& part : spec.parts) {
        gen->fill_fp8(layer_module(i, part.module) + kWeightSuffix, part.rows, spec.k,
                      l.weight.data() + static_cast<std::size_t>(row) * spec.k,
                      l.scales.data() + static_cast<std::size_t>(row / kQuantGroup) * kb, &jobs);
        row += part.rows;
      }
    }
  }
  parallel_for_each(jobs.size(), [&](std::size_t j) { jobs[j](); });
  *out = std::move(*w);
  return Status::Ok();
}

Status make_dummy_qwen3(const std::string& preset, std::uint64_t seed, Qwen3Weights* out) {
  Qwen3Config config;
  FP8LM_RETURN_IF_ERROR(qwen3_preset(preset, &config));
  return make_dummy_qwen3(config, seed, out);
}

}  // namespace fp8lm
