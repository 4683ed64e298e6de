// make -> write -> load round trips (FP8 and BF16, exact) and the loader's refusals: every bad
// input yields a message naming the file and tensor/field, and leaves the output untouched.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>

#include "checkpoint_test_util.h"
#include "engine/checkpoint/dummy_weights.h"
#include "engine/checkpoint/qwen3_checkpoint_writer.h"
#include "engine/checkpoint/qwen3_config_json.h"
#include "engine/checkpoint/qwen3_loader.h"
#include "engine/checkpoint/qwen3_tensor_names.h"
#include "fp8lm/cpu.h"
#include "fp8lm/random.h"

namespace fp8lm {
namespace {

using testing::TempDir;
using testing::small_config;
using testing::write_text;

bool same_bf16(const std::vector<bf16>& a, const std::vector<bf16>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(bf16)) == 0;
}

void expect_same_linear(const Fp8Linear& a, const Fp8Linear& b, const std::string& what) {
  EXPECT_EQ(a.n, b.n) << what;
  EXPECT_EQ(a.k, b.k) << what;
  ASSERT_EQ(a.weight.size(), b.weight.size()) << what;
  EXPECT_EQ(std::memcmp(a.weight.data(), b.weight.data(), a.weight.size()), 0) << what;
  EXPECT_EQ(a.scales, b.scales) << what;
}

void expect_same_weights(const Qwen3Weights& a, const Qwen3Weights& b) {
  EXPECT_TRUE(same_bf16(a.embed_tokens, b.embed_tokens));
  EXPECT_TRUE(same_bf16(a.norm, b.norm));
  EXPECT_TRUE(same_bf16(a.lm_head, b.lm_head));
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (std::size_t i = 0; i < a.layers.size(); ++i) {
    for (const LayerNormSpec& n : qwen3_layer_norms(a.config))
      EXPECT_TRUE(same_bf16(a.layers[i].*n.member, b.layers[i].*n.member)) << i << " " << n.module;
    EXPECT_TRUE(same_bf16(a.layers[i].moe.router, b.layers[i].moe.router)) << i << " router";
    for (const FusedLinearSpec& spec : qwen3_layer_linears(a.config, static_cast<int>(i)))
      expect_same_linear(spec.of(a.layers[i]), spec.of(b.layers[i]),
                         "layer " + std::to_string(i) + " " + spec.parts[0].module);
  }
}

// What loading a BF16 checkpoint written from `made` must give: each fused linear dequantized
// (FP8 code x scale, rounded to BF16 as written) and quantized again.
void expect_requantized(const Qwen3Weights& made, const Qwen3Weights& loaded) {
  ASSERT_EQ(made.layers.size(), loaded.layers.size());
  for (std::size_t i = 0; i < made.layers.size(); ++i)
    for (const FusedLinearSpec& spec : qwen3_layer_linears(made.config, static_cast<int>(i))) {
      const Fp8Linear& m = spec.of(made.layers[i]);
      const int kb = ceil_div(m.k, kQuantGroup);
      std::vector<float> w(m.weight.size());
      for (std::size_t e = 0; e < w.size(); ++e) {
        const std::size_t r = e / m.k, c = e % m.k;
        w[e] = bf16_to_float(float_to_bf16(cpu::fp8_decode(m.weight[e]) * m.scales[r / kQuantGroup * kb + c / kQuantGroup]));
      }
      Fp8Linear expected = m;
      ASSERT_TRUE(cpu::quantize_weight_blockwise(w.data(), m.n, m.k, expected.weight.data(), expected.scales.data()).ok());
      expect_same_linear(expected, spec.of(loaded.layers[i]), "layer " + std::to_string(i) + " " + spec.parts[0].module);
    }
}

// A sentinel that a failed load must leave as it is.
Qwen3Weights sentinel() {
  Qwen3Weights w;
  w.config.model_type = "sentinel";
  w.embed_tokens = {bf16{0x1234}};
  return w;
}
void expect_sentinel(const Qwen3Weights& w) {
  EXPECT_EQ(w.config.model_type, "sentinel");
  ASSERT_EQ(w.embed_tokens.size(), 1u);
  EXPECT_EQ(w.embed_tokens[0].bits, 0x1234);
  EXPECT_TRUE(w.layers.empty());
}

// The tiny preset's dummy weights, written to `dir`.
Qwen3Weights make_tiny_checkpoint(const TempDir& dir, std::uint64_t seed, CheckpointDtype dtype) {
  Qwen3Weights made;
  EXPECT_TRUE(make_dummy_qwen3("tiny", seed, &made).ok());
  EXPECT_TRUE(write_qwen3_checkpoint(made, dir.str(), dtype).ok());
  return made;
}

TEST(Qwen3Checkpoint, TinyFp8RoundTripIsExact) {
  TempDir dir;
  const Qwen3Weights made = make_tiny_checkpoint(dir, 42, CheckpointDtype::kFp8);
  Qwen3Weights loaded;
  int calls = 0;
  bool finished = false;
  const Status st = load_qwen3(dir.str(), &loaded, [&](const LoadProgressInfo& p) {
    ++calls;
    finished = p.finished;
    EXPECT_LE(p.bytes_done, p.bytes_total);
  });
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_GT(calls, 2);
  EXPECT_TRUE(finished);
  EXPECT_TRUE(loaded.config.fp8);
  EXPECT_EQ(loaded.config.hidden_size, 256);
  EXPECT_TRUE(loaded.lm_head.empty());
  EXPECT_EQ(&loaded.output_embedding(), &loaded.embed_tokens);
  EXPECT_EQ(loaded.generation.eos_token_ids, made.generation.eos_token_ids);
  expect_same_weights(made, loaded);
}

// A BF16 checkpoint holds the dequantized weights; loading fuses and quantizes them, which must
// equal quantizing the fused dequantized weights directly.
TEST(Qwen3Checkpoint, TinyBf16RoundTripQuantizesAtLoad) {
  TempDir dir;
  const Qwen3Weights made = make_tiny_checkpoint(dir, 3, CheckpointDtype::kBf16);
  Qwen3Weights loaded;
  const Status st = load_qwen3(dir.str(), &loaded);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_FALSE(loaded.config.fp8);
  EXPECT_TRUE(same_bf16(made.embed_tokens, loaded.embed_tokens));
  expect_requantized(made, loaded);
}

// One tensor of the ragged test below, in memory.
struct StoredTensor {
  std::string name;
  Dtype dtype;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> bytes;
};

// A float that is exactly an F16 (zero or a normal F16 that is also a BF16), as F16 bits.
std::uint16_t exact_half(float v) {
  std::uint32_t u;
  std::memcpy(&u, &v, 4);
  const auto sign = static_cast<std::uint16_t>((u >> 16) & 0x8000);
  if ((u & 0x7FFFFFFF) == 0) return sign;
  const int exp = static_cast<int>((u >> 23) & 0xFF) - 127;
  EXPECT_TRUE(exp >= -14 && exp <= 15 && (u & 0x1FFF) == 0) << v << " is not exactly an F16";
  return static_cast<std::uint16_t>(sign | ((exp + 15) << 10) | ((u >> 13) & 0x3FF));
}

// The loader quantizes BF16/F16/F32 linears in 128-row bands on all threads, block by block
// straight from the mapped file; that must equal fusing each linear in float and quantizing it with
// the sequential cpu::quantize_weight_blockwise, bit for bit. Ragged everywhere: q 192, k/v 64 and
// gate/up 300 rows put band boundaries inside parts; hidden 200 and intermediate 300 give partial
// column blocks. Fused linears mix BF16, F16, F32 and FP8 parts (an FP8 part among float ones is
// dequantized first); the single-part FP8 linears take the copying path with a partial last band.
TEST(Qwen3Checkpoint, ParallelLoadEqualsSequentialQuantizationOnRaggedShapes) {
  Qwen3Config c = small_config();
  c.hidden_size = 200;
  c.intermediate_size = 300;
  c.head_dim = 64;
  c.num_attention_heads = 3;
  c.num_key_value_heads = 1;
  c.fp8 = true;  // FP8 parts allowed; float parts are quantized at load
  TempDir dir;
  ASSERT_TRUE(write_qwen3_config_files(c, GenerationConfig{}, dir.str()).ok());

  Rng rng(20261128);
  // Weights of varied magnitude that are exact in BF16 and F16 (so every dtype stores the same value).
  const auto weight_value = [&] {
    const float v = bf16_to_float(float_to_bf16(static_cast<float>(rng.normal() * 0.02 * std::exp2(rng.uniform(-3, 3)))));
    return std::fabs(v) < 0x1.0p-14f ? 0.0f : v;
  };
  std::vector<StoredTensor> stored;
  const auto add_bf16 = [&](const std::string& name, std::vector<std::int64_t> shape) {
    std::vector<std::byte> bytes(2 * static_cast<std::size_t>(shape[0]) * (shape.size() > 1 ? shape[1] : 1));
    for (std::size_t i = 0; i < bytes.size() / 2; ++i) {
      const bf16 v = float_to_bf16(weight_value());
      std::memcpy(bytes.data() + 2 * i, &v, 2);
    }
    stored.push_back({name, Dtype::BF16, std::move(shape), std::move(bytes)});
  };
  add_bf16(kEmbedTokens, {c.vocab_size, c.hidden_size});
  add_bf16(kLmHead, {c.vocab_size, c.hidden_size});
  add_bf16(kFinalNorm, {c.hidden_size});

  // Each layer's parts in order q, k, v, o, gate, up, down, with the dtype each is stored in.
  const Dtype kFp8 = Dtype::F8_E4M3;
  const std::vector<std::vector<Dtype>> dtypes = {
      {Dtype::BF16, Dtype::F16, kFp8, kFp8, Dtype::F32, Dtype::BF16, Dtype::BF16},
      {kFp8, Dtype::BF16, Dtype::F32, Dtype::BF16, kFp8, Dtype::F16, kFp8},
  };
  // What each fused linear must load as: FP8 codes and scales copied when every part is FP8,
  // otherwise the fused float values to quantize.
  struct Expected {
    bool all_fp8 = true;
    std::vector<float> fused;  // [n, k]
    std::vector<fp8_e4m3> codes;
    std::vector<float> scales;
  };
  std::vector<std::vector<Expected>> expected(c.num_hidden_layers);  // [layer][linear]
  for (int layer = 0; layer < c.num_hidden_layers; ++layer) {
    for (const LayerNormSpec& n : qwen3_layer_norms(c)) add_bf16(layer_module(layer, n.module) + kWeightSuffix, {n.size});
    std::size_t part_index = 0;
    for (const FusedLinearSpec& spec : qwen3_layer_linears(c, layer)) {
      Expected& e = expected[layer].emplace_back();
      for (const LinearPart& part : spec.parts) {
        const Dtype dtype = dtypes[layer][part_index++];
        const std::string module = layer_module(layer, part.module);
        const std::size_t count = static_cast<std::size_t>(part.rows) * spec.k;
        e.all_fp8 = e.all_fp8 && dtype == kFp8;
        std::vector<std::byte> bytes(count * dtype_size(dtype));
        if (dtype == kFp8) {
          const int kb = ceil_div(spec.k, kQuantGroup);
          std::vector<float> scales(static_cast<std::size_t>(ceil_div(part.rows, kQuantGroup)) * kb);
          std::vector<std::byte> scale_bytes(2 * scales.size());
          for (std::size_t i = 0; i < scales.size(); ++i) {
            const bf16 s = float_to_bf16(static_cast<float>(rng.uniform(1e-5, 1e-3)));
            scales[i] = bf16_to_float(s);
            std::memcpy(scale_bytes.data() + 2 * i, &s, 2);
          }
          for (std::size_t i = 0; i < count; ++i) {
            auto code = static_cast<std::uint8_t>(rng.next());
            if ((code & 0x7F) == 0x7F) code = 0x7E;  // no NaN codes
            bytes[i] = std::byte{code};
            e.codes.push_back({code});
            const std::size_t r = i / spec.k, col = i % spec.k;
            e.fused.push_back(cpu::fp8_decode({code}) * scales[r / kQuantGroup * kb + col / kQuantGroup]);
          }
          e.scales.insert(e.scales.end(), scales.begin(), scales.end());
          stored.push_back({module + kScaleSuffix, Dtype::BF16,
                            {ceil_div(part.rows, kQuantGroup), kb}, std::move(scale_bytes)});
        } else {
          for (std::size_t i = 0; i < count; ++i) {
            // F32 parts get full-precision values; the others the BF16- and F16-exact ones.
            const float v = dtype == Dtype::F32 ? static_cast<float>(rng.normal() * 0.05) : weight_value();
            e.fused.push_back(v);
            if (dtype == Dtype::F32) std::memcpy(bytes.data() + 4 * i, &v, 4);
            if (dtype == Dtype::BF16) {
              const bf16 h = float_to_bf16(v);
              std::memcpy(bytes.data() + 2 * i, &h, 2);
            }
            if (dtype == Dtype::F16) {
              const std::uint16_t h = exact_half(v);
              std::memcpy(bytes.data() + 2 * i, &h, 2);
            }
          }
        }
        stored.push_back({module + kWeightSuffix, dtype, {part.rows, spec.k}, std::move(bytes)});
      }
    }
  }
  std::vector<TensorToWrite> to_write;
  for (const StoredTensor& t : stored) to_write.push_back({t.name, t.dtype, t.shape, t.bytes, nullptr});
  ASSERT_TRUE(write_safetensors_checkpoint(dir.str(), to_write).ok());

  Qwen3Weights loaded;
  const Status st = load_qwen3(dir.str(), &loaded);
  ASSERT_TRUE(st.ok()) << st.message();
  for (int layer = 0; layer < c.num_hidden_layers; ++layer) {
    const std::vector<FusedLinearSpec> specs = qwen3_layer_linears(c, layer);
    for (std::size_t l = 0; l < specs.size(); ++l) {
      const Fp8Linear& got = specs[l].of(loaded.layers[layer]);
      const Expected& e = expected[layer][l];
      Fp8Linear want = got;
      ASSERT_EQ(e.fused.size(), static_cast<std::size_t>(got.n) * got.k);
      if (e.all_fp8) {
        want.weight = e.codes;
        want.scales = e.scales;
      } else {
        ASSERT_TRUE(cpu::quantize_weight_blockwise(e.fused.data(), got.n, got.k, want.weight.data(), want.scales.data()).ok());
      }
      expect_same_linear(want, got, "layer " + std::to_string(layer) + " " + specs[l].parts[0].module);
    }
  }
}

TEST(Qwen3Checkpoint, ShardedFolderLoads) {
  TempDir dir;
  Qwen3Weights made;
  ASSERT_TRUE(make_dummy_qwen3(small_config(), 1, &made).ok());
  ASSERT_TRUE(write_qwen3_checkpoint(made, dir.str(), CheckpointDtype::kFp8, 100'000).ok());
  EXPECT_TRUE(std::filesystem::exists(dir.file("model.safetensors.index.json")));
  Qwen3Weights loaded;
  const Status st = load_qwen3(dir.str(), &loaded);
  ASSERT_TRUE(st.ok()) << st.message();
  expect_same_weights(made, loaded);
}

TEST(Qwen3Checkpoint, TiedModelIgnoresAStoredLmHead) {
  TempDir dir;
  Qwen3Config c = small_config();
  c.tie_word_embeddings = true;
  Qwen3Weights made;
  ASSERT_TRUE(make_dummy_qwen3(c, 1, &made).ok());
  ASSERT_TRUE(write_qwen3_config_files(c, made.generation, dir.str()).ok());
  std::vector<TensorToWrite> t = qwen3_checkpoint_tensors(made, CheckpointDtype::kFp8);
  t.push_back({kLmHead, Dtype::BF16, {c.vocab_size, c.hidden_size}, {}, [](std::span<std::byte> d) {
                 std::memset(d.data(), 0, d.size());
               }});
  ASSERT_TRUE(write_safetensors_checkpoint(dir.str(), t).ok());
  Qwen3Weights loaded;
  ASSERT_TRUE(load_qwen3(dir.str(), &loaded).ok());
  EXPECT_TRUE(loaded.lm_head.empty());
}

// weight_scale_inv may be F32 or F16 instead of BF16 (as in some non-official checkpoints).
TEST(Qwen3Checkpoint, ScalesInF32AndF16) {
  TempDir dir;
  Qwen3Weights made;
  ASSERT_TRUE(make_dummy_qwen3(small_config(), 4, &made).ok());
  ASSERT_TRUE(write_qwen3_config_files(made.config, made.generation, dir.str()).ok());
  std::vector<TensorToWrite> t = qwen3_checkpoint_tensors(made, CheckpointDtype::kFp8);
  const std::vector<float>& down = made.layers[0].down.scales;  // [1, 2]
  const std::vector<float>& o = made.layers[1].o.scales;        // [1, 2]
  for (TensorToWrite& x : t) {
    if (x.name == "model.layers.0.mlp.down_proj.weight_scale_inv")
      x = {x.name, Dtype::F32, {1, 2}, {reinterpret_cast<const std::byte*>(down.data()), 8}, nullptr};
    if (x.name == "model.layers.1.self_attn.o_proj.weight_scale_inv")
      x = {x.name, Dtype::F16, {1, 2}, {}, [&o](std::span<std::byte> d) {
             for (int i = 0; i < 2; ++i) {  // BF16-exact normal values are F16-exact: rebias the exponent
               std::uint32_t u;
               std::memcpy(&u, &o[i], 4);
               const auto h = static_cast<std::uint16_t>(((u >> 16) & 0x8000) | ((((u >> 23) & 0xFF) - 112) << 10) |
                                                         ((u >> 13) & 0x3FF));
               std::memcpy(d.data() + 2 * i, &h, 2);
             }
           }};
  }
  ASSERT_TRUE(write_safetensors_checkpoint(dir.str(), t).ok());
  Qwen3Weights loaded;
  const Status st = load_qwen3(dir.str(), &loaded);
  ASSERT_TRUE(st.ok()) << st.message();
  expect_same_weights(made, loaded);
}

// Broken checkpoints of the small config: each test tampers with the tensor list or the files.
class BadCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(make_dummy_qwen3(small_config(), 5, &weights_).ok()); }

  // Writes the checkpoint after `tamper` edits its tensors; returns load_qwen3's status.
  Status load_tampered(const std::function<void(std::vector<TensorToWrite>&)>& tamper,
                       CheckpointDtype dtype = CheckpointDtype::kFp8) {
    Qwen3Config config = weights_.config;
    config.fp8 = dtype == CheckpointDtype::kFp8;
    EXPECT_TRUE(write_qwen3_config_files(config, weights_.generation, dir_.str()).ok());
    std::vector<TensorToWrite> t = qwen3_checkpoint_tensors(weights_, dtype);
    tamper(t);
    EXPECT_TRUE(write_safetensors_checkpoint(dir_.str(), t).ok());
    return load();
  }
  Status load() { return load_qwen3(dir_.str(), &out_); }
  TensorToWrite& find(std::vector<TensorToWrite>& t, const std::string& name) {
    for (TensorToWrite& x : t)
      if (x.name == name) return x;
    ADD_FAILURE() << "no tensor " << name;
    return t.front();
  }
  void edit_config(const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j;
    ASSERT_TRUE(read_json_file(dir_.file("config.json"), &j).ok());
    edit(j);
    write_text(dir_.file("config.json"), j.dump());
  }
  void TearDown() override { expect_sentinel(out_); }

  static void zeros(std::span<std::byte> d) { std::memset(d.data(), 0, d.size()); }

  TempDir dir_;
  Qwen3Weights weights_;
  Qwen3Weights out_ = sentinel();
};

TEST_F(BadCheckpoint, WrongDtype) {
  EXPECT_ERROR_HAS(load_tampered([](std::vector<TensorToWrite>& t) {
                     for (TensorToWrite& x : t)
                       if (x.name == kFinalNorm) x = {kFinalNorm, Dtype::I16, {128}, {}, zeros};
                   }),
                   "model.safetensors", "tensor model.norm.weight has dtype I16, expected BF16, F16 or F32");
}

TEST_F(BadCheckpoint, WrongShape) {
  EXPECT_ERROR_HAS(load_tampered([&](std::vector<TensorToWrite>& t) {
                     TensorToWrite& k = find(t, "model.layers.1.self_attn.k_proj.weight");
                     k = {k.name, Dtype::F8_E4M3, {128, 64}, {}, zeros};
                   }),
                   "model.safetensors", "model.layers.1.self_attn.k_proj.weight has shape [128, 64]",
                   "expected [128, 128]");
}

TEST_F(BadCheckpoint, WrongScaleShape) {
  EXPECT_ERROR_HAS(load_tampered([&](std::vector<TensorToWrite>& t) {
                     TensorToWrite& s = find(t, "model.layers.0.mlp.down_proj.weight_scale_inv");
                     s = {s.name, Dtype::BF16, {2, 2}, {}, zeros};
                   }),
                   "model.layers.0.mlp.down_proj.weight_scale_inv has shape [2, 2]", "expected [1, 2]");
}

TEST_F(BadCheckpoint, MissingTensor) {
  EXPECT_ERROR_HAS(load_tampered([](std::vector<TensorToWrite>& t) {
                     std::erase_if(t, [](const TensorToWrite& x) { return x.name == "model.layers.1.self_attn.v_proj.weight"; });
                   }),
                   dir_.str(), "missing tensor model.layers.1.self_attn.v_proj.weight");
}

TEST_F(BadCheckpoint, MissingScale) {
  EXPECT_ERROR_HAS(load_tampered([](std::vector<TensorToWrite>& t) {
                     std::erase_if(t, [](const TensorToWrite& x) { return x.name == "model.layers.0.mlp.up_proj.weight_scale_inv"; });
                   }),
                   "model.layers.0.mlp.up_proj.weight is F8_E4M3 but model.layers.0.mlp.up_proj.weight_scale_inv is missing");
}

TEST_F(BadCheckpoint, NonFiniteScale) {
  EXPECT_ERROR_HAS(load_tampered([&](std::vector<TensorToWrite>& t) {
                     TensorToWrite& s = find(t, "model.layers.1.self_attn.o_proj.weight_scale_inv");
                     s.fill = [](std::span<std::byte> d) { std::memset(d.data(), 0xFF, d.size()); };  // NaN
                   }),
                   "model.layers.1.self_attn.o_proj.weight_scale_inv has a non-finite scale");
}

TEST_F(BadCheckpoint, UnexpectedTensor) {
  EXPECT_ERROR_HAS(load_tampered([](std::vector<TensorToWrite>& t) {
                     t.push_back({"model.layers.0.self_attn.q_proj.bias", Dtype::BF16, {256}, {}, zeros});
                   }),
                   "model.safetensors", "unexpected tensor model.layers.0.self_attn.q_proj.bias");
}

TEST_F(BadCheckpoint, Fp8WeightsWithoutQuantizationConfig) {
  ASSERT_TRUE(load_tampered([](std::vector<TensorToWrite>&) {}).ok());
  out_ = sentinel();
  edit_config([](nlohmann::json& j) { j.erase("quantization_config"); });
  EXPECT_ERROR_HAS(load(), "has dtype F8_E4M3", "needs a quantization_config");
}

TEST_F(BadCheckpoint, ConfigMissingField) {
  ASSERT_TRUE(load_tampered([](std::vector<TensorToWrite>&) {}).ok());
  out_ = sentinel();
  edit_config([](nlohmann::json& j) { j.erase("num_key_value_heads"); });
  EXPECT_ERROR_HAS(load(), "config.json", "missing field \"num_key_value_heads\"");
}

TEST_F(BadCheckpoint, ConfigDisagreesWithTensors) {
  ASSERT_TRUE(load_tampered([](std::vector<TensorToWrite>&) {}).ok());
  out_ = sentinel();
  edit_config([](nlohmann::json& j) { j["intermediate_size"] = 384; });
  EXPECT_ERROR_HAS(load(), "model.layers.0.mlp.gate_proj.weight has shape [256, 128], expected [384, 128]");
}

TEST_F(BadCheckpoint, DenseTensorsUnderAMoeConfig) {
  ASSERT_TRUE(load_tampered([](std::vector<TensorToWrite>&) {}).ok());
  out_ = sentinel();
  edit_config([](nlohmann::json& j) {
    j["model_type"] = "qwen3_moe";
    j["num_experts"] = 8;
    j["num_experts_per_tok"] = 2;
    j["moe_intermediate_size"] = 128;
  });
  EXPECT_ERROR_HAS(load(), "missing tensor model.layers.0.mlp.gate.weight");
}

TEST_F(BadCheckpoint, UnsupportedQuantMethod) {
  ASSERT_TRUE(load_tampered([](std::vector<TensorToWrite>&) {}).ok());
  out_ = sentinel();
  edit_config([](nlohmann::json& j) { j["quantization_config"]["quant_method"] = "gptq"; });
  EXPECT_ERROR_HAS(load(), "config.json", "unsupported quant_method \"gptq\"");
}

TEST_F(BadCheckpoint, MissingAndTruncatedShard) {
  // 700 KB shards: the embeddings and both layers, then lm_head.
  ASSERT_TRUE(write_qwen3_checkpoint(weights_, dir_.str(), CheckpointDtype::kFp8, 700'000).ok());
  const std::string last = dir_.file("model-00002-of-00002.safetensors");
  ASSERT_TRUE(std::filesystem::exists(last));
  std::filesystem::resize_file(last, std::filesystem::file_size(last) - 100);
  EXPECT_ERROR_HAS(load(), "model-00002-of-00002.safetensors", "truncated");
  std::filesystem::remove(last);
  EXPECT_ERROR_HAS(load(), "model-00002-of-00002.safetensors", "missing shard");
}

TEST_F(BadCheckpoint, MissingConfig) {
  EXPECT_ERROR_HAS(load(), "config.json", "cannot open");
}

// MoE checkpoints (small_moe_config: layer 0 sparse with 4 experts, layer 1 dense).
TEST(Qwen3Checkpoint, MoeRoundTripsFp8AndBf16) {
  for (CheckpointDtype dtype : {CheckpointDtype::kFp8, CheckpointDtype::kBf16}) {
    TempDir dir;
    Qwen3Weights made;
    ASSERT_TRUE(make_dummy_qwen3(testing::small_moe_config(), 6, &made).ok());
    ASSERT_TRUE(write_qwen3_checkpoint(made, dir.str(), dtype).ok());
    Qwen3Weights loaded;
    const Status st = load_qwen3(dir.str(), &loaded);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(loaded.config.model_type, "qwen3_moe");
    EXPECT_EQ(loaded.config.mlp_only_layers, std::vector<int>{1});
    ASSERT_EQ(loaded.layers[0].moe.experts.size(), 4u);
    EXPECT_TRUE(loaded.layers[1].moe.experts.empty());
    EXPECT_TRUE(same_bf16(made.layers[0].moe.router, loaded.layers[0].moe.router));
    if (dtype == CheckpointDtype::kFp8) {
      expect_same_weights(made, loaded);
    } else {
      expect_requantized(made, loaded);
    }
  }
}

class BadMoeCheckpoint : public BadCheckpoint {
 protected:
  void SetUp() override { ASSERT_TRUE(make_dummy_qwen3(testing::small_moe_config(), 7, &weights_).ok()); }
};

TEST_F(BadMoeCheckpoint, MissingExpertWeight) {
  EXPECT_ERROR_HAS(load_tampered([](std::vector<TensorToWrite>& t) {
                     std::erase_if(t, [](const TensorToWrite& x) { return x.name == "model.layers.0.mlp.experts.3.up_proj.weight"; });
                   }),
                   dir_.str(), "missing tensor model.layers.0.mlp.experts.3.up_proj.weight");
}

TEST_F(BadMoeCheckpoint, MissingExpertScale) {
  EXPECT_ERROR_HAS(load_tampered([](std::vector<TensorToWrite>& t) {
                     std::erase_if(t, [](const TensorToWrite& x) {
                       return x.name == "model.layers.0.mlp.experts.1.down_proj.weight_scale_inv";
                     });
                   }),
                   "model.layers.0.mlp.experts.1.down_proj.weight is F8_E4M3 but "
                   "model.layers.0.mlp.experts.1.down_proj.weight_scale_inv is missing");
}

TEST_F(BadMoeCheckpoint, ExpertWrongShape) {
  EXPECT_ERROR_HAS(load_tampered([&](std::vector<TensorToWrite>& t) {
                     TensorToWrite& g = find(t, "model.layers.0.mlp.experts.2.gate_proj.weight");
                     g = {g.name, Dtype::F8_E4M3, {256, 128}, {}, zeros};
                   }),
                   "model.layers.0.mlp.experts.2.gate_proj.weight has shape [256, 128]", "expected [128, 128]");
}

TEST_F(BadMoeCheckpoint, MissingRouter) {
  EXPECT_ERROR_HAS(load_tampered([](std::vector<TensorToWrite>& t) {
                     std::erase_if(t, [](const TensorToWrite& x) { return x.name == "model.layers.0.mlp.gate.weight"; });
                   }),
                   dir_.str(), "missing tensor model.layers.0.mlp.gate.weight");
}

TEST_F(BadMoeCheckpoint, RouterWrongShape) {
  EXPECT_ERROR_HAS(load_tampered([&](std::vector<TensorToWrite>& t) {
                     TensorToWrite& r = find(t, "model.layers.0.mlp.gate.weight");
                     r = {r.name, Dtype::BF16, {5, 128}, {}, zeros};
                   }),
                   "model.layers.0.mlp.gate.weight has shape [5, 128]", "expected [4, 128]");
}

// The router stays in bf16 (modules_to_not_convert): an FP8 router is refused, not misread.
TEST_F(BadMoeCheckpoint, RouterInFp8) {
  EXPECT_ERROR_HAS(load_tampered([&](std::vector<TensorToWrite>& t) {
                     TensorToWrite& r = find(t, "model.layers.0.mlp.gate.weight");
                     r = {r.name, Dtype::F8_E4M3, {4, 128}, {}, zeros};
                   }),
                   "tensor model.layers.0.mlp.gate.weight has dtype F8_E4M3, expected BF16, F16 or F32");
}

TEST_F(BadMoeCheckpoint, DenseMlpInASparseLayer) {
  EXPECT_ERROR_HAS(load_tampered([](std::vector<TensorToWrite>& t) {
                     t.push_back({"model.layers.0.mlp.down_proj.weight", Dtype::BF16, {128, 256}, {}, zeros});
                   }),
                   "unexpected tensor model.layers.0.mlp.down_proj.weight");
}

TEST_F(BadMoeCheckpoint, ExpertBeyondNumExperts) {
  EXPECT_ERROR_HAS(load_tampered([](std::vector<TensorToWrite>& t) {
                     t.push_back({"model.layers.0.mlp.experts.4.down_proj.weight", Dtype::BF16, {128, 128}, {}, zeros});
                   }),
                   "unexpected tensor model.layers.0.mlp.experts.4.down_proj.weight");
}

TEST_F(BadMoeCheckpoint, ExpertsInAnMlpOnlyLayer) {
  ASSERT_TRUE(load_tampered([](std::vector<TensorToWrite>&) {}).ok());
  out_ = sentinel();
  edit_config([](nlohmann::json& j) { j["mlp_only_layers"] = nlohmann::json::array({0, 1}); });
  EXPECT_ERROR_HAS(load(), "missing tensor model.layers.0.mlp.gate_proj.weight");
}

TEST_F(BadMoeCheckpoint, ConfigHasMoreExperts) {
  ASSERT_TRUE(load_tampered([](std::vector<TensorToWrite>&) {}).ok());
  out_ = sentinel();
  edit_config([](nlohmann::json& j) { j["num_experts"] = 5; });
  EXPECT_ERROR_HAS(load(), "model.layers.0.mlp.gate.weight has shape [4, 128], expected [5, 128]");
}

// The BF16 path accepts F32 and F16 weights too (converted, then quantized).
TEST(Qwen3Checkpoint, Bf16CheckpointWithF32Norm) {
  TempDir dir;
  Qwen3Weights made;
  ASSERT_TRUE(make_dummy_qwen3(small_config(), 9, &made).ok());
  Qwen3Config config = made.config;
  config.fp8 = false;
  ASSERT_TRUE(write_qwen3_config_files(config, made.generation, dir.str()).ok());
  std::vector<TensorToWrite> t = qwen3_checkpoint_tensors(made, CheckpointDtype::kBf16);
  for (TensorToWrite& x : t)
    if (x.name == kFinalNorm)
      x = {kFinalNorm, Dtype::F32, {128}, {}, [](std::span<std::byte> d) {
             for (std::size_t i = 0; i < d.size() / 4; ++i) {
               const float two = 2.0f;
               std::memcpy(d.data() + 4 * i, &two, 4);
             }
           }};
  ASSERT_TRUE(write_safetensors_checkpoint(dir.str(), t).ok());
  Qwen3Weights loaded;
  const Status st = load_qwen3(dir.str(), &loaded);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_EQ(loaded.norm.size(), 128u);
  EXPECT_EQ(bf16_to_float(loaded.norm[5]), 2.0f);
}

}  // namespace
}  // namespace fp8lm
