#include "engine/checkpoint/qwen3_checkpoint_writer.h"

#include <filesystem>
#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>

#include "engine/checkpoint/fp8_decode_table.h"
#include "fp8lm/parallel.h"
#include "engine/checkpoint/qwen3_config_json.h"
#include "engine/checkpoint/qwen3_tensor_names.h"

namespace fp8lm {

namespace {

template <typename T>
std::span<const std::byte> bytes_of(const T* p, std::size_t count) {
  return {reinterpret_cast<const std::byte*>(p), count * sizeof(T)};
}

TensorToWrite bf16_tensor(std::string name, const std::vector<bf16>& v, std::vector<std::int64_t> shape) {
  return {std::move(name), Dtype::BF16, std::move(shape), bytes_of(v.data(), v.size()), nullptr};
}

// Writes bf16 values into a fill buffer (safetensors is little-endian, like every host fp8lm runs on).
void put_bf16(std::span<std::byte> dst, std::size_t i, float v) {
  const bf16 b = float_to_bf16(v);
  std::memcpy(dst.data() + 2 * i, &b, 2);
}

// Rows [row, row + rows) of a fused linear as one checkpoint linear.
void add_linear_part(const Fp8Linear& l, const std::string& module, int row, int rows, CheckpointDtype dtype,
                     std::vector<TensorToWrite>* out) {
  const int k = l.k, kb = ceil_div(k, kQuantGroup);
  const std::size_t first = static_cast<std::size_t>(row) * k, count = static_cast<std::size_t>(rows) * k;
  const Fp8Linear* lp = &l;
  if (dtype == CheckpointDtype::kFp8) {
    out->push_back({module + kWeightSuffix, Dtype::F8_E4M3, {rows, k}, bytes_of(l.weight.data() + first, count), nullptr});
    const std::size_t s0 = static_cast<std::size_t>(row / kQuantGroup) * kb;
    const int srows = ceil_div(rows, kQuantGroup);
    out->push_back({module + kScaleSuffix, Dtype::BF16, {srows, kb}, {}, [lp, s0](std::span<std::byte> dst) {
                      for (std::size_t i = 0; i < dst.size() / 2; ++i) put_bf16(dst, i, lp->scales[s0 + i]);
                    }});
    return;
  }
  // Dequantized row by row, 128 rows per job on all threads (a 32B gate_up is 260 M elements).
  out->push_back({module + kWeightSuffix, Dtype::BF16, {rows, k}, {}, [lp, row, rows, k, kb](std::span<std::byte> dst) {
                    const std::array<float, 256>& decode = fp8_decode_table();
                    parallel_for_each(ceil_div(rows, kQuantGroup), [&](std::size_t rb) {
                      const int r0 = static_cast<int>(rb) * kQuantGroup, r1 = std::min(rows, r0 + kQuantGroup);
                      const float* scales = lp->scales.data() + static_cast<std::size_t>((row + r0) / kQuantGroup) * kb;
                      for (int r = r0; r < r1; ++r) {
                        const fp8_e4m3* src = lp->weight.data() + static_cast<std::size_t>(row + r) * k;
                        for (int c = 0; c < k; ++c)
                          put_bf16(dst, static_cast<std::size_t>(r) * k + c, decode[src[c].bits] * scales[c / kQuantGroup]);
                      }
                    });
                  }});
}

Status write_json(const std::string& path, const nlohmann::ordered_json& j) {
  std::ofstream f(path);
  f << j.dump(2) << "\n";
  f.close();
  if (!f) return Status::Error(path + ": write failed");
  return Status::Ok();
}

}  // namespace

std::vector<TensorToWrite> qwen3_checkpoint_tensors(const Qwen3Weights& w, CheckpointDtype dtype) {
  const Qwen3Config& c = w.config;
  const std::int64_t vocab = c.vocab_size, hidden = c.hidden_size;
  std::vector<TensorToWrite> t;
  t.push_back(bf16_tensor(kEmbedTokens, w.embed_tokens, {vocab, hidden}));
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const Qwen3LayerWeights& layer = w.layers[i];
    for (const LayerNormSpec& n : qwen3_layer_norms(c))
      t.push_back(bf16_tensor(layer_module(i, n.module) + kWeightSuffix, layer.*n.member, {n.size}));
    if (c.is_moe_layer(i))
      t.push_back(bf16_tensor(layer_module(i, kRouterModule) + kWeightSuffix, layer.moe.router,
                              {c.num_experts, hidden}));
    for (const FusedLinearSpec& spec : qwen3_layer_linears(c, i)) {
      int row = 0;
      for (const LinearPart& part : spec.parts) {
        add_linear_part(spec.of(layer), layer_module(i, part.module), row, part.rows, dtype, &t);
        row += part.rows;
      }
    }
  }
  t.push_back(bf16_tensor(kFinalNorm, w.norm, {hidden}));
  if (!c.tie_word_embeddings) t.push_back(bf16_tensor(kLmHead, w.lm_head, {vocab, hidden}));
  return t;
}

Status write_qwen3_config_files(const Qwen3Config& config, const GenerationConfig& generation,
                                const std::string& dir) {
  namespace fs = std::filesystem;
  FP8LM_RETURN_IF_ERROR(write_json((fs::path(dir) / "config.json").string(), qwen3_config_to_json(config)));
  return write_json((fs::path(dir) / "generation_config.json").string(),
                    generation_config_to_json(generation, config.bos_token_id));
}

Status write_qwen3_checkpoint(const Qwen3Weights& w, const std::string& dir, CheckpointDtype dtype,
                              std::uint64_t max_shard_bytes, const WriteProgress& progress) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::Error(dir + ": cannot create the folder (" + ec.message() + ")");
  Qwen3Config config = w.config;
  config.fp8 = dtype == CheckpointDtype::kFp8;
  FP8LM_RETURN_IF_ERROR(write_qwen3_config_files(config, w.generation, dir));
  const std::vector<TensorToWrite> tensors = qwen3_checkpoint_tensors(w, dtype);
  return write_safetensors_checkpoint(dir, tensors, max_shard_bytes, progress);
}

}  // namespace fp8lm
