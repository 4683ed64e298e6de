// `fp8lm make-checkpoint`: a real checkpoint folder in the official Qwen3(-FP8) format with random
// weights drawn like an initialised model, plus the Qwen3 tokenizer files, for tests and benchmarks.
//
//   fp8lm make-checkpoint --preset tiny --out /tmp/tiny [--seed 0] [--dtype fp8|bf16]
//                         [--tokenizer-dir .cache/tokenizer/qwen3]
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "commands.h"
#include "model_source.h"
#include "engine/checkpoint/dummy_weights.h"
#include "engine/checkpoint/qwen3_checkpoint_writer.h"
#include "engine/model/qwen3_footprint.h"
#include "engine/checkpoint/qwen3_presets.h"

namespace fp8lm::cli {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kTokenizerFiles[] = {"tokenizer.json", "tokenizer_config.json"};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

Status check_tokenizer_dir(const std::string& dir) {
  for (const char* name : kTokenizerFiles) {
    std::error_code ec;
    if (!fs::is_regular_file(fs::path(dir) / name, ec))
      return Status::Error((fs::path(dir) / name).string() +
                           ": missing (run scripts/fetch-tokenizer-data.sh, or pass --tokenizer-dir DIR)");
  }
  return Status::Ok();
}

struct Options {
  std::string preset, out, dtype = "fp8", tokenizer_dir = default_tokenizer_dir();
  std::uint64_t seed = 0;
};

Status run(const Options& o) {
  if (o.dtype != "fp8" && o.dtype != "bf16") return Status::Error("--dtype must be fp8 or bf16, got " + o.dtype);
  FP8LM_RETURN_IF_ERROR(check_tokenizer_dir(o.tokenizer_dir));
  Qwen3Config config;
  FP8LM_RETURN_IF_ERROR(qwen3_preset(o.preset, &config));

  Clock::time_point t = Clock::now();
  Qwen3Weights w;
  FP8LM_RETURN_IF_ERROR(make_dummy_qwen3(config, o.seed, &w));
  const double gb = qwen3_footprint(config).weight_bytes / 1e9;
  fmt::print(stderr, "generated {} dummy weights (seed {}): {:.2f} GB in {:.2f} s ({:.2f} GB/s)\n", o.preset, o.seed,
             gb, seconds_since(t), gb / seconds_since(t));

  t = Clock::now();
  double last = 0;
  const WriteProgress progress = [&](std::uint64_t done, std::uint64_t total) {
    if (seconds_since(t) - last < 1.0) return;
    last = seconds_since(t);
    fmt::print(stderr, "writing {}: {:.2f}/{:.2f} GB, {:.2f} GB/s\n", o.out, done / 1e9, total / 1e9, done / 1e9 / last);
  };
  const CheckpointDtype dtype = o.dtype == "fp8" ? CheckpointDtype::kFp8 : CheckpointDtype::kBf16;
  FP8LM_RETURN_IF_ERROR(write_qwen3_checkpoint(w, o.out, dtype, kMaxShardBytes, progress));
  for (const char* name : kTokenizerFiles) {
    std::error_code ec;
    fs::copy_file(fs::path(o.tokenizer_dir) / name, fs::path(o.out) / name, fs::copy_options::overwrite_existing, ec);
    if (ec) return Status::Error((fs::path(o.out) / name).string() + ": cannot copy the tokenizer file (" + ec.message() + ")");
  }
  fmt::print(stderr, "wrote {} ({} {}) in {:.2f} s\n", o.out, o.preset, o.dtype, seconds_since(t));
  return Status::Ok();
}

}  // namespace

void add_make_checkpoint_command(CLI::App& app, int& exit_code) {
  CLI::App* cmd = app.add_subcommand("make-checkpoint",
                                     "Write a Qwen3 checkpoint folder (official format) with random weights");
  auto o = std::make_shared<Options>();
  std::string presets;
  for (const std::string& n : qwen3_preset_names()) presets += (presets.empty() ? "" : ", ") + n;
  cmd->add_option("--preset", o->preset, "Model: " + presets)->required();
  cmd->add_option("--out", o->out, "Output folder (created if missing)")->required();
  cmd->add_option("--seed", o->seed, "Random seed (the same seed gives the same weights on every machine)");
  cmd->add_option("--dtype", o->dtype, "fp8 (official FP8 layout, default) or bf16 (plain checkpoint)");
  cmd->add_option("--tokenizer-dir", o->tokenizer_dir,
                  "Folder with tokenizer.json and tokenizer_config.json to copy (default: $FP8LM_TOKENIZER_DATA/qwen3 "
                  "or .cache/tokenizer/qwen3)");
  cmd->callback([&exit_code, o] {
    const Status st = run(*o);
    if (!st.ok()) fmt::print(stderr, "fp8lm: error: {}\n", st.message());
    exit_code = st.ok() ? 0 : 1;
  });
}

}  // namespace fp8lm::cli
