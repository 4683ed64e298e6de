// `fp8lm info --model DIR` / `--preset NAME`: a checkpoint's (or a preset's) architecture and what
// running it costs, from its config.json and safetensors headers (no weights are read), and
// whether that fits this machine's GPU.
#include <fmt/format.h>

#include <filesystem>

#include "commands.h"
#include "fp8lm/device.h"
#include "engine/checkpoint/qwen3_config_json.h"
#include "engine/checkpoint/qwen3_presets.h"
#include "engine/model/qwen3_footprint.h"
#include "engine/model/qwen3_model.h"
#include "engine/checkpoint/safetensors.h"

namespace fp8lm::cli {

namespace {

// The architecture, sizes and memory needs of a config; the checkpoint's files when one is given.
void print_config_info(const std::string& what, const Qwen3Config& c, const SafetensorsCheckpoint* ckpt) {
  const Qwen3Footprint f = qwen3_footprint(c);
  fmt::print("model {}: {} ({}), {} layers, hidden {}, {} q heads / {} kv heads x {}, vocab {}{}\n", what,
             c.model_type, c.fp8 ? "fp8 blockwise 128x128" : "bf16, quantized to fp8 at load", c.num_hidden_layers,
             c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.vocab_size,
             c.tie_word_embeddings ? ", tied embeddings" : "");
  if (c.is_moe())
    fmt::print("  MoE: {} experts, top-{}, expert intermediate {}\n", c.num_experts, c.num_experts_per_tok,
               c.moe_intermediate_size);
  else
    fmt::print("  intermediate {}\n", c.intermediate_size);
  fmt::print("  parameters: {:.3f} B", f.parameters / 1e9);
  if (f.active_parameters != f.parameters) fmt::print(" ({:.3f} B active per token)", f.active_parameters / 1e9);
  fmt::print("\n");
  if (ckpt != nullptr)
    fmt::print("  checkpoint: {:.3f} GB in {} file(s), {} tensors\n", ckpt->total_bytes() / 1e9, ckpt->num_files(),
               ckpt->tensors().size());
  fmt::print("  weights in memory (fp8 linears + fp32 scales, bf16 rest): {:.3f} GB\n", f.weight_bytes / 1e9);
  fmt::print("  KV cache (bf16): {} bytes per token\n", f.kv_bytes_per_token);
  // What `fp8lm generate` allocates on a GPU by default (the model's full context).
  const ModelMemory need = model_memory(c, ModelOptions{});
  fmt::print("  memory needed on a GPU: {:.3f} GB = weights {:.3f} + KV cache for {} tokens {:.3f} + scratch {:.3f}\n",
             need.total() / 1e9, need.weights / 1e9, c.max_position_embeddings, need.kv_cache / 1e9,
             need.scratch / 1e9);
  std::string why;
  DeviceInfo device;
  if (cuda_device_available(&why) && current_device(&device).ok())
    fmt::print("  this machine's GPU {} ({:.1f} GB): {}\n", device.name, device.global_mem_bytes / 1e9,
               need.total() <= device.global_mem_bytes ? "fits" : "does not fit on one card");
}

}  // namespace

Status print_model_info(const std::string& dir) {
  Qwen3Config c;
  FP8LM_RETURN_IF_ERROR(read_qwen3_config((std::filesystem::path(dir) / "config.json").string(), &c));
  SafetensorsCheckpoint ckpt;
  FP8LM_RETURN_IF_ERROR(SafetensorsCheckpoint::open(dir, &ckpt));
  print_config_info(dir, c, &ckpt);
  return Status::Ok();
}

Status print_preset_info(const std::string& preset) {
  Qwen3Config c;
  FP8LM_RETURN_IF_ERROR(qwen3_preset(preset, &c));
  print_config_info(preset + " (preset: no checkpoint read)", c, nullptr);
  return Status::Ok();
}

}  // namespace fp8lm::cli
