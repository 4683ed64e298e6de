// Writing Qwen3Weights as a Hugging Face checkpoint folder in the official layout: config.json,
// generation_config.json and safetensors with the official tensor names (q/k/v and gate/up split
// again), sharded above 5 GB.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/checkpoint/safetensors_writer.h"
#include "engine/model/qwen3_weights.h"
#include "fp8lm/status.h"

namespace fp8lm {

enum class CheckpointDtype {
  kFp8,   // F8_E4M3 linears with BF16 weight_scale_inv (fp32 scales are rounded to BF16), a
          // quantization_config in config.json
  kBf16,  // every linear dequantized to BF16, no quantization_config
};

// The tensors of that checkpoint, in file order; they point into `w`, which must outlive them.
std::vector<TensorToWrite> qwen3_checkpoint_tensors(const Qwen3Weights& w, CheckpointDtype dtype);

// Writes the folder `dir` (created if missing). Tensors come from qwen3_checkpoint_tensors.
Status write_qwen3_checkpoint(const Qwen3Weights& w, const std::string& dir, CheckpointDtype dtype,
                              std::uint64_t max_shard_bytes = kMaxShardBytes, const WriteProgress& progress = nullptr);

// Writes config.json and generation_config.json only (`config` as given, fp8 decides the
// quantization_config).
Status write_qwen3_config_files(const Qwen3Config& config, const GenerationConfig& generation,
                                const std::string& dir);

}  // namespace fp8lm
