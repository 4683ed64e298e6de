// config.json and generation_config.json <-> Qwen3Config / GenerationConfig, in the field names and
// conventions of the official Qwen3 checkpoints.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "engine/model/qwen3_config.h"
#include "fp8lm/status.h"

namespace fp8lm {

// Parses a config.json document; `where` (the file path) prefixes every message. model_type must be
// qwen3 or qwen3_moe (parsed; loading MoE weights is refused later); a quantization_config must be
// {quant_method fp8, fmt e4m3, activation_scheme dynamic, weight_block_size [128, 128]}.
Status parse_qwen3_config(const nlohmann::json& j, const std::string& where, Qwen3Config* out);
// Reads `path` (a config.json) and parses it.
Status read_qwen3_config(const std::string& path, Qwen3Config* out);

// generation_config.json: eos_token_id (one id or a list) and the sampling defaults; absent fields
// keep GenerationConfig's defaults.
Status parse_generation_config(const nlohmann::json& j, const std::string& where, GenerationConfig* out);
Status read_generation_config(const std::string& path, GenerationConfig* out);

// The official config.json of this configuration (quantization_config when config.fp8).
nlohmann::ordered_json qwen3_config_to_json(const Qwen3Config& config);
nlohmann::ordered_json generation_config_to_json(const GenerationConfig& generation, int bos_token_id);

// Reads a whole JSON file, which must hold an object.
Status read_json_file(const std::string& path, nlohmann::json* out);

}  // namespace fp8lm
