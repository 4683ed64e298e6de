// `fp8lm bench one-batch`: see bench/one_batch_bench.h. This file checks the lengths against the
// model's context before any weight is read, measures the card's ceilings (GPU only) before the
// model takes the memory, then loads the model and runs the protocol.
#include <fmt/format.h>

#include <filesystem>
#include <memory>

#include "bench/one_batch_bench.h"
#include "commands.h"
#include "fp8lm/device.h"
#include "model_source.h"

namespace fp8lm::cli {

namespace {

// Replays per ceiling measurement, as `bench gemm` uses by default.
constexpr int kCeilingReplays = 7;

Status run_bench_one_batch(ModelSourceOptions source, const bench::OneBatchOptions& opt) {
  Qwen3Config config;
  FP8LM_RETURN_IF_ERROR(read_model_config(source, &config));
  int context_needed = 0;
  FP8LM_RETURN_IF_ERROR(bench::check_one_batch_options(opt, config, &context_needed));
  if (source.max_context == 0) source.max_context = context_needed;
  if (source.max_context < context_needed)
    return Status::Error(fmt::format("--max-context {} is below the {} tokens of the longest run (input + output)",
                                     source.max_context, context_needed));

  DeviceKind kind = DeviceKind::kCpu;
  FP8LM_RETURN_IF_ERROR(resolve_device_kind(source.device, &kind));
  source.device = kind == DeviceKind::kCuda ? "cuda" : "cpu";
  bench::OneBatchTarget target;
  std::optional<bench::Ceilings> ceilings;
  if (kind == DeviceKind::kCuda) {
    DeviceInfo device;
    FP8LM_RETURN_IF_ERROR(current_device(&device));
    target.gpu = device.name;
    fmt::print("measuring the ceilings of {} (copy bandwidth, FP8 peak)\n", device.name);
    std::fflush(stdout);
    bench::Ceilings measured;
    FP8LM_RETURN_IF_ERROR(bench::measure_ceilings(kCeilingReplays, &measured));
    ceilings = measured;
  }

  LoadedModel loaded;
  FP8LM_RETURN_IF_ERROR(load_model(source, &loaded));
  target.model_name = bench::matching_preset(config);
  if (target.model_name.empty())
    target.model_name = source.load_format == "dummy"
                            ? source.preset
                            : std::filesystem::path(source.model_dir).lexically_normal().filename().string();
  target.description = loaded.description;
  return bench::run_one_batch_bench(*loaded.model, target, opt, ceilings);
}

}  // namespace

void add_bench_one_batch_command(CLI::App* bench, int& exit_code) {
  CLI::App* cmd = bench->add_subcommand(
      "one-batch", "The seed's protocol: batch 1, prefill + greedy decode; tokens/s, ITL, speed-of-light ratio");
  auto source = std::make_shared<ModelSourceOptions>();
  auto opt = std::make_shared<bench::OneBatchOptions>();
  add_model_source_options(cmd, source.get());
  add_cuda_graphs_option(cmd, source.get());
  cmd->add_option("--input-len", opt->input_lens, "Prompt lengths in tokens, one run each")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--output-len", opt->output_len, "Generated tokens per run (the first comes from the prefill)")
      ->capture_default_str();
  cmd->add_option("--out", opt->out_dir, "Directory for the JSON and markdown results")->capture_default_str();
  cmd->add_option("--tag", opt->tag, "Suffix for the result file names");
  cmd->add_option("--profile-steps", opt->profile_steps,
                  "Run the first input's prefill and this many decode steps inside a CUDA profiler range "
                  "(ncu --profile-from-start off); that run's times are the profiler's");
  cmd->add_option("--kernel-trace", opt->kernel_trace_steps,
                  "Trace this many decode steps of the first input (from its second step on) with CUPTI and write "
                  "each kernel's share of a step, overlaps as in a run, to kernel-trace-*.{json,md} (CUDA only)");
  cmd->callback([&exit_code, source, opt] {
    const Status st = run_bench_one_batch(*source, *opt);
    if (!st.ok()) fmt::print(stderr, "fp8lm bench one-batch: {}\n", st.message());
    exit_code = st.ok() ? 0 : 1;
  });

  CLI::App* seed = bench->add_subcommand(
      "seed-table", "The seed's published numbers with each engine's speed-of-light ratio on its own card");
  auto seed_out = std::make_shared<std::string>("bench/results");
  seed->add_option("--out", *seed_out, "Directory for seed-reference-sol.{json,md}")->capture_default_str();
  seed->callback([&exit_code, seed_out] {
    const Status st = bench::write_seed_table(*seed_out);
    if (!st.ok()) fmt::print(stderr, "fp8lm bench seed-table: {}\n", st.message());
    exit_code = st.ok() ? 0 : 1;
  });
}

}  // namespace fp8lm::cli
