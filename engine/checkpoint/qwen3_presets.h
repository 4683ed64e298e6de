// Built-in Qwen3 configurations: the official dense and MoE models (their config.json values, as
// FP8 checkpoints) and `tiny`, a real Qwen3 architecture small enough for CI.
#pragma once

#include <string>
#include <vector>

#include "engine/model/qwen3_config.h"
#include "fp8lm/status.h"

namespace fp8lm {

// tiny: 2 layers, hidden 256, 4 query heads / 2 KV heads of 128 (the q projection is wider than
// hidden, as in 0.6B), intermediate 768, the full 151936 vocabulary so the real tokenizer works,
// tied embeddings. Every linear dimension is a multiple of 128, like the real models.
inline constexpr const char* kTinyPreset = "tiny";
// tiny-moe: tiny's attention and embeddings (tied), every layer a qwen3_moe sparse block of 8
// experts (moe_intermediate 256), top-2, norm_topk_prob; intermediate_size 768 stays for configs
// that add mlp_only_layers.
inline constexpr const char* kTinyMoePreset = "tiny-moe";

// "tiny", "tiny-moe", "qwen3-0.6b", ..., "qwen3-32b", "qwen3-30b-a3b", "qwen3-235b-a22b".
std::vector<std::string> qwen3_preset_names();

// The preset's config (fp8 = true). `name` may omit the "qwen3-" prefix ("0.6b").
Status qwen3_preset(const std::string& name, Qwen3Config* out);

}  // namespace fp8lm
