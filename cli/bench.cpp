// `fp8lm bench gemm` (see bench/gemm_bench.h) and `fp8lm bench one-batch` (cli/bench_one_batch.cpp).
#include <fmt/format.h>

#include "bench/gemm_bench.h"
#include "commands.h"
#include "fp8lm/device.h"

namespace fp8lm::cli {

void add_bench_command(CLI::App& app, int& exit_code) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks (results go to bench/results/)");
  bench->require_subcommand(1);
  CLI::App* gemm = bench->add_subcommand("gemm", "FP8 blockwise GEMM vs cuBLASLt blockwise FP8 and bf16, Qwen3 shapes");
  auto opt = std::make_shared<bench::GemmBenchOptions>();
  gemm->add_option("--out", opt->out_dir, "Directory for the JSON and markdown results")->capture_default_str();
  gemm->add_option("--models", opt->models, "Models to include (e.g. qwen3-8b,qwen3-30b-a3b); default: the seed's seven")
      ->delimiter(',');
  gemm->add_option("--m", opt->ms, "Batch sizes (tokens)")->delimiter(',')->capture_default_str();
  gemm->add_option("--replays", opt->replays, "Timed graph replays per measurement")->check(CLI::Range(3, 100))
      ->capture_default_str();
  gemm->add_flag("--all-configs", opt->all_configs, "Also time every compiled configuration of our kernel");
  gemm->add_option("--tag", opt->tag, "Suffix for the result file names");
  gemm->add_flag("--grouped", opt->grouped,
                 "MoE experts instead: one grouped launch vs per-expert cuBLASLt and dense loops (decode 1 token, "
                 "prefill 4096 tokens)");
  gemm->callback([&exit_code, opt] {
    std::string why;
    if (!cuda_device_available(&why)) {
      fmt::print(stderr, "fp8lm bench gemm: needs a CUDA GPU (sm_89 or sm_90); none here: {}\n", why);
      exit_code = 1;
      return;
    }
    for (int m : opt->ms)
      if (m < 1) {
        fmt::print(stderr, "fp8lm bench gemm: --m values must be >= 1 (got {})\n", m);
        exit_code = 2;
        return;
      }
    const Status st = bench::run_gemm_bench(*opt);
    if (!st.ok()) fmt::print(stderr, "fp8lm bench gemm: {}\n", st.message());
    exit_code = st.ok() ? 0 : 1;
  });
  add_bench_one_batch_command(bench, exit_code);
}

}  // namespace fp8lm::cli
