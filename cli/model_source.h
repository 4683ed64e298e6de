// The options every command that loads a model shares, and the loading itself:
//   --model DIR                      a Hugging Face Qwen3 checkpoint folder (FP8 or BF16)
//   --preset NAME --load-format dummy  random weights of a preset's shape, made in memory (no disk)
//   --tokenizer-dir DIR              tokenizer files for dummy models (default: the fetched Qwen3 files)
//   --device auto|cpu|cuda, --max-context N
//   --no-cuda-graphs                 (decoding commands) run every decode step op by op
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/model/backend.h"
#include "engine/model/qwen3_model.h"
#include "engine/model/qwen3_weights.h"
#include "fp8lm/chat_template.h"
#include "fp8lm/tokenizer.h"

namespace fp8lm::cli {

struct ModelSourceOptions {
  std::string model_dir;
  std::string preset;
  std::string load_format = "auto";  // auto (checkpoint) | dummy
  std::uint64_t seed = 0;            // dummy weights
  std::string tokenizer_dir;         // empty: the model folder, or for dummy models the fetched files
  std::string device = "auto";
  int max_context = 0;               // 0: the model's full context (CUDA) or 4096 (CPU)
  bool cuda_graphs = true;           // ModelOptions::cuda_graphs (--no-cuda-graphs)
};

// Where scripts/fetch-tokenizer-data.sh puts the Qwen3 tokenizer files ($FP8LM_TOKENIZER_DATA/qwen3,
// default .cache/tokenizer/qwen3).
std::string default_tokenizer_dir();

void add_model_source_options(CLI::App* cmd, ModelSourceOptions* opt);
// --no-cuda-graphs, for the commands that decode (generate, bench one-batch).
void add_cuda_graphs_option(CLI::App* cmd, ModelSourceOptions* opt);

// A model ready to run: weights uploaded to the chosen backend, tokenizer, chat template.
struct LoadedModel {
  Qwen3Config config;
  GenerationConfig generation;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Qwen3Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  ChatTemplate chat_template;
  std::string description;  // "qwen3-8b (dummy weights) on cuda: NVIDIA H200 (sm_90)"
};

Status load_model(const ModelSourceOptions& opt, LoadedModel* out);

// The config of the model load_model would load (the preset's, or the folder's config.json),
// without reading weights: for checks that should fail before a long load.
Status read_model_config(const ModelSourceOptions& opt, Qwen3Config* out);

// --device as load_model resolves it: auto is CUDA when an FP8-capable GPU is present.
Status resolve_device_kind(const std::string& device, DeviceKind* out);

}  // namespace fp8lm::cli
