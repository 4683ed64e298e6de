#include "model_source.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "engine/checkpoint/dummy_weights.h"
#include "engine/checkpoint/qwen3_config_json.h"
#include "engine/checkpoint/qwen3_loader.h"
#include "engine/checkpoint/qwen3_presets.h"
#include "fp8lm/device.h"

namespace fp8lm::cli {

namespace fs = std::filesystem;

namespace {
constexpr int kCpuDefaultContext = 4096;  // the CPU backend's KV cache is host RAM; keep it modest
}

std::string default_tokenizer_dir() {
  const char* env = std::getenv("FP8LM_TOKENIZER_DATA");
  return (fs::path(env && *env ? env : ".cache/tokenizer") / "qwen3").string();
}

void add_model_source_options(CLI::App* cmd, ModelSourceOptions* opt) {
  cmd->add_option("--model", opt->model_dir, "Hugging Face Qwen3 checkpoint folder (FP8 or BF16)");
  cmd->add_option("--preset", opt->preset, "Model shape for --load-format dummy (see `fp8lm make-checkpoint --help`)");
  cmd->add_option("--load-format", opt->load_format, "auto: read --model; dummy: random weights in memory")
      ->check(CLI::IsMember({"auto", "dummy"}))
      ->capture_default_str();
  cmd->add_option("--seed-weights", opt->seed, "Seed of dummy weights")->capture_default_str();
  cmd->add_option("--tokenizer-dir", opt->tokenizer_dir,
                  "Folder with tokenizer.json and tokenizer_config.json (default: the model folder; for dummy "
                  "models the files fetched by scripts/fetch-tokenizer-data.sh)");
  cmd->add_option("--device", opt->device, "auto (a CUDA GPU if there is one), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--max-context", opt->max_context,
                  "KV cache length in tokens (default: the model's context on a GPU, 4096 on the CPU)")
      ->check(CLI::NonNegativeNumber);
}

void add_cuda_graphs_option(CLI::App* cmd, ModelSourceOptions* opt) {
  cmd->add_flag("!--no-cuda-graphs", opt->cuda_graphs,
                "Run every decode step op by op instead of replaying a CUDA graph (on a GPU)");
}

namespace {

// The combination of --model / --preset / --load-format names one model.
Status check_source(const ModelSourceOptions& opt) {
  const bool dummy = opt.load_format == "dummy";
  if (dummy && opt.preset.empty()) return Status::Error("--load-format dummy needs --preset NAME");
  if (!dummy && opt.model_dir.empty())
    return Status::Error("no model: pass --model DIR (a Qwen3 checkpoint folder) or --preset NAME --load-format dummy");
  if (!dummy && !opt.preset.empty()) return Status::Error("--preset is only used with --load-format dummy");
  std::error_code ec;
  if (!dummy && !fs::is_directory(opt.model_dir, ec))
    return Status::Error("--model " + opt.model_dir + ": not a directory (expected a Hugging Face checkpoint folder)");
  return Status::Ok();
}

}  // namespace

Status resolve_device_kind(const std::string& device_option, DeviceKind* out) {
  if (device_option != "auto") return parse_device_kind(device_option, out);
  DeviceInfo device;
  *out = cuda_device_available() && current_device(&device).ok() && check_fp8_support(device).ok() ? DeviceKind::kCuda
                                                                                                   : DeviceKind::kCpu;
  return Status::Ok();
}

Status read_model_config(const ModelSourceOptions& opt, Qwen3Config* out) {
  FP8LM_RETURN_IF_ERROR(check_source(opt));
  if (opt.load_format == "dummy") return qwen3_preset(opt.preset, out);
  return read_qwen3_config((fs::path(opt.model_dir) / "config.json").string(), out);
}

Status load_model(const ModelSourceOptions& opt, LoadedModel* out) {
  FP8LM_RETURN_IF_ERROR(check_source(opt));
  const bool dummy = opt.load_format == "dummy";
  DeviceKind kind = DeviceKind::kCpu;
  FP8LM_RETURN_IF_ERROR(resolve_device_kind(opt.device, &kind));
  LoadedModel m;
  FP8LM_RETURN_IF_ERROR(Backend::create(kind, &m.backend));

  const std::string tokenizer_dir =
      !opt.tokenizer_dir.empty() ? opt.tokenizer_dir : (dummy ? default_tokenizer_dir() : opt.model_dir);
  FP8LM_RETURN_IF_ERROR(Tokenizer::FromModelDir(tokenizer_dir, &m.tokenizer));
  FP8LM_RETURN_IF_ERROR(ChatTemplate::FromModelDir(tokenizer_dir, &m.chat_template));

  Qwen3Weights weights;
  const auto t0 = std::chrono::steady_clock::now();
  if (dummy) {
    FP8LM_RETURN_IF_ERROR(make_dummy_qwen3(opt.preset, opt.seed, &weights));
    fmt::print(stderr, "made dummy {} weights in {:.1f} s\n", opt.preset,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  } else {
    FP8LM_RETURN_IF_ERROR(load_qwen3(opt.model_dir, &weights, stderr_load_progress(opt.model_dir)));
  }
  if (weights.config.vocab_size < static_cast<int>(m.tokenizer->vocab_size()))
    return Status::Error(fmt::format("the tokenizer in {} has {} tokens but the model's vocabulary is {}", tokenizer_dir,
                                     m.tokenizer->vocab_size(), weights.config.vocab_size));

  ModelOptions model_options;
  model_options.cuda_graphs = opt.cuda_graphs;
  model_options.max_context = opt.max_context > 0 ? opt.max_context
                              : kind == DeviceKind::kCpu
                                  ? std::min(kCpuDefaultContext, weights.config.max_position_embeddings)
                                  : weights.config.max_position_embeddings;
  if (model_options.max_context > weights.config.max_position_embeddings)
    return Status::Error(fmt::format("--max-context {} exceeds the model's context length {}", model_options.max_context,
                                     weights.config.max_position_embeddings));
  const auto t1 = std::chrono::steady_clock::now();
  FP8LM_RETURN_IF_ERROR(Qwen3Model::create(weights, *m.backend, model_options, &m.model));
  fmt::print(stderr, "model on {} in {:.1f} s (context {} tokens)\n", m.backend->describe(),
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count(), model_options.max_context);
  m.config = weights.config;
  m.generation = weights.generation;
  m.description = (dummy ? opt.preset + " (dummy weights)" : opt.model_dir) + " on " + m.backend->describe();
  *out = std::move(m);
  return Status::Ok();
}

}  // namespace fp8lm::cli
