// Op by op against transformers: every op of the tiny preset's two decoder layers is fed the input
// that the transformers reference gave it (tests/reference/dump_layer_ops.py, 64 random tokens,
// tests/data/tiny-layer-ops.safetensors) and its output is compared with the reference's output.
// Unlike the end-to-end logits comparison, a difference here is pinned to one op and is not
// amplified by the ops after it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/checkpoint/dummy_weights.h"
#include "engine/checkpoint/safetensors.h"
#include "fp8lm/cpu.h"
#include "fp8lm/layer_ops.h"

namespace fp8lm {
namespace {

const char* kDump = FP8LM_TEST_DATA_DIR "/tiny-layer-ops.safetensors";

class TransformersOps : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(SafetensorsFile::open(kDump, &dump_).ok());
    ASSERT_TRUE(make_dummy_qwen3("tiny", 0, &weights_).ok());
  }
  static void TearDownTestSuite() { dump_.reset(); }

  static std::vector<bf16> ref(const std::string& name) {
    const auto it = dump_->tensors().find(name);
    EXPECT_NE(it, dump_->tensors().end()) << name;
    if (it == dump_->tensors().end()) return {};
    std::vector<bf16> v(it->second.nbytes / sizeof(bf16));
    std::memcpy(v.data(), it->second.data, it->second.nbytes);
    return v;
  }
  // Row-wise concatenation of [rows, a] and [rows, b] tensors.
  static std::vector<bf16> concat_rows(const std::vector<std::vector<bf16>>& parts, int rows) {
    std::vector<bf16> out;
    for (int r = 0; r < rows; ++r)
      for (const auto& p : parts) {
        const std::size_t w = p.size() / rows;
        out.insert(out.end(), p.begin() + r * w, p.begin() + (r + 1) * w);
      }
    return out;
  }
  static std::vector<bf16> linear(const std::vector<bf16>& in, const Fp8Linear& w, int rows) {
    std::vector<fp8_e4m3> q(in.size());
    std::vector<float> s(static_cast<std::size_t>(rows) * ceil_div(w.k, kQuantGroup));
    EXPECT_TRUE(cpu::quantize_per_token_group({in.data(), q.data(), s.data(), rows, w.k}).ok());
    std::vector<bf16> out(static_cast<std::size_t>(rows) * w.n);
    EXPECT_TRUE(cpu::gemm_fp8_blockwise({q.data(), s.data(), w.weight.data(), w.scales.data(), out.data(), rows, w.n, w.k}).ok());
    return out;
  }
  static std::vector<bf16> rmsnorm(const std::vector<bf16>& in, const std::vector<bf16>& w, int rows) {
    const int dim = static_cast<int>(w.size());
    std::vector<bf16> out(in.size());
    const float eps = static_cast<float>(weights_.config.rms_norm_eps);
    EXPECT_TRUE(cpu::rmsnorm({in.data(), w.data(), out.data(), rows, dim, dim, dim, eps}).ok());
    return out;
  }
  static std::vector<bf16> add(std::vector<bf16> x, const std::vector<bf16>& y) {
    EXPECT_TRUE(cpu::add({x.data(), y.data(), x.size()}).ok());
    return x;
  }

  static std::unique_ptr<SafetensorsFile> dump_;
  static Qwen3Weights weights_;
};
std::unique_ptr<SafetensorsFile> TransformersOps::dump_;
Qwen3Weights TransformersOps::weights_;

// How far apart two bf16 tensors are, in units in the last place. Ops that round the same fp32
// value the same way must agree exactly; the GEMMs and attention sum in another order than
// PyTorch, which changes the bf16 rounding of a value now and then (well under 0.1% of values,
// by an ulp or two; a value near zero can be many ulps off in absolute terms that small).
struct UlpReport {
  std::size_t count = 0, differ = 0;
  int max_ulp = 0;
};
int ordered(bf16 v) {
  const int u = v.bits;
  return (u & 0x8000) ? -(u & 0x7fff) : u;
}
UlpReport ulps(const std::vector<bf16>& ours, const std::vector<bf16>& theirs, const char* what) {
  UlpReport r;
  EXPECT_EQ(ours.size(), theirs.size()) << what;
  r.count = std::min(ours.size(), theirs.size());
  for (std::size_t i = 0; i < r.count; ++i) {
    const int d = std::abs(ordered(ours[i]) - ordered(theirs[i]));
    r.differ += d != 0;
    r.max_ulp = std::max(r.max_ulp, d);
  }
  std::printf("  %-40s %7zu values, %6zu differ (%.3f%%), max %d ulp\n", what, r.count, r.differ,
              100.0 * r.differ / std::max<std::size_t>(r.count, 1), r.max_ulp);
  return r;
}

void exact(const std::vector<bf16>& ours, const std::vector<bf16>& theirs, const char* what) {
  EXPECT_EQ(ulps(ours, theirs, what).differ, 0u) << what;
}
void close(const std::vector<bf16>& ours, const std::vector<bf16>& theirs, const char* what) {
  const UlpReport r = ulps(ours, theirs, what);
  EXPECT_LE(r.differ, r.count / 1000) << what;  // an FP8 quantization mismatch changes whole rows
}

constexpr int kTokens = 64;

TEST_F(TransformersOps, EmbeddingIsTheSameModel) {
  const auto ids_view = dump_->tensors().at("ids");
  std::vector<std::int32_t> ids(kTokens);
  std::memcpy(ids.data(), ids_view.data, sizeof(std::int32_t) * kTokens);
  const Qwen3Config& c = weights_.config;
  std::vector<bf16> out(static_cast<std::size_t>(kTokens) * c.hidden_size);
  ASSERT_TRUE(
      cpu::embed({ids.data(), weights_.embed_tokens.data(), out.data(), kTokens, c.vocab_size, c.hidden_size}).ok());
  exact(out, ref("embed.out"), "embed");
}

TEST_F(TransformersOps, EveryOpOfEveryLayer) {
  const Qwen3Config& c = weights_.config;
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const Qwen3LayerWeights& w = weights_.layers[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    std::printf("layer %d\n", l);
    exact(rmsnorm(ref(p + "input_layernorm.in"), w.input_layernorm, kTokens), ref(p + "input_layernorm.out"),
          "input_layernorm");
    const std::vector<bf16> qkv_ref =
        concat_rows({ref(p + "self_attn.q_proj.out"), ref(p + "self_attn.k_proj.out"), ref(p + "self_attn.v_proj.out")},
                    kTokens);
    close(linear(ref(p + "self_attn.q_proj.in"), w.qkv, kTokens), qkv_ref, "qkv_proj");

    // q/k norm + RoPE from the reference's projections.
    // A contiguous cache: one page holding every token.
    const std::int32_t page0[1] = {0};
    std::vector<bf16> qkv = qkv_ref, k_cache(kTokens * c.kv_width()), v_cache(kTokens * c.kv_width());
    ASSERT_TRUE(cpu::qk_norm_rope({qkv.data(), w.q_norm.data(), w.k_norm.data(), k_cache.data(), v_cache.data(), page0,
                                   kTokens, kTokens, 0, kTokens, c.num_attention_heads, c.num_key_value_heads,
                                   c.head_dim, static_cast<float>(c.rms_norm_eps), static_cast<float>(c.rope_theta)})
                    .ok());
    std::vector<bf16> q_ours, q_ref = ref(p + "attention.q");
    for (int t = 0; t < kTokens; ++t)
      q_ours.insert(q_ours.end(), qkv.begin() + t * c.qkv_width(), qkv.begin() + t * c.qkv_width() + c.q_width());
    exact(q_ours, q_ref, "q_norm + rope");
    exact(k_cache, ref(p + "attention.k"), "k_norm + rope");
    exact(v_cache, ref(p + "attention.v"), "v (cache)");

    // Attention from the reference's q, k, v.
    std::vector<bf16> att_in = concat_rows({q_ref, ref(p + "attention.k"), ref(p + "attention.v")}, kTokens);
    const std::vector<bf16> kc = ref(p + "attention.k"), vc = ref(p + "attention.v");
    std::vector<bf16> att(static_cast<std::size_t>(kTokens) * c.q_width());
    ASSERT_TRUE(cpu::attention({att_in.data(), kc.data(), vc.data(), page0, kTokens, att.data(), kTokens, 0, kTokens,
                                c.num_attention_heads, c.num_key_value_heads, c.head_dim,
                                1.0f / std::sqrt(static_cast<float>(c.head_dim))})
                    .ok());
    close(att, ref(p + "attention.out"), "attention");
    close(linear(ref(p + "self_attn.o_proj.in"), w.o, kTokens), ref(p + "self_attn.o_proj.out"), "o_proj");
    exact(add(ref(p + "input_layernorm.in"), ref(p + "self_attn.o_proj.out")), ref(p + "post_attention_layernorm.in"),
          "residual add 1");
    exact(rmsnorm(ref(p + "post_attention_layernorm.in"), w.post_attention_layernorm, kTokens),
          ref(p + "post_attention_layernorm.out"), "post_attention_layernorm");
    const std::vector<bf16> gate_up_ref = concat_rows({ref(p + "mlp.gate_proj.out"), ref(p + "mlp.up_proj.out")}, kTokens);
    close(linear(ref(p + "mlp.gate_proj.in"), w.gate_up, kTokens), gate_up_ref, "gate_up_proj");
    std::vector<bf16> act(static_cast<std::size_t>(kTokens) * c.intermediate_size);
    ASSERT_TRUE(cpu::silu_mul({gate_up_ref.data(), act.data(), kTokens, c.intermediate_size}).ok());
    exact(act, ref(p + "mlp.down_proj.in"), "silu * up");
    close(linear(ref(p + "mlp.down_proj.in"), w.down, kTokens), ref(p + "mlp.down_proj.out"), "down_proj");
    exact(add(ref(p + "post_attention_layernorm.in"), ref(p + "mlp.down_proj.out")), ref(p + "out"), "residual add 2");
  }
  const std::string last = "layers." + std::to_string(c.num_hidden_layers - 1) + ".out";
  exact(rmsnorm(ref(last), weights_.norm, kTokens), ref("norm.out"), "final norm");
}

}  // namespace
}  // namespace fp8lm
