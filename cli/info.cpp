// `fp8lm info`: what fp8lm sees on this machine (GPUs, FP8 support, compiled kernels), or with
// --model DIR (or --preset NAME) a model's architecture and memory needs (model_info.cpp).
#include <fmt/format.h>

#include <memory>

#include "commands.h"
#include "fp8lm/device.h"
#include "fp8lm/gemm.h"

namespace fp8lm::cli {

void add_info_command(CLI::App& app, int& exit_code) {
  CLI::App* cmd = app.add_subcommand("info", "Show the GPU fp8lm would use and the compiled kernels");
  auto gpu_present = std::make_shared<bool>(false);
  cmd->add_flag("--gpu-present", *gpu_present, "Print nothing; exit 0 only if an FP8-capable GPU is usable");
  auto model = std::make_shared<std::string>();
  auto* model_opt =
      cmd->add_option("--model", *model, "A checkpoint folder: print its architecture, sizes and memory needs instead");
  auto preset = std::make_shared<std::string>();
  cmd->add_option("--preset", *preset, "A preset (see `fp8lm make-checkpoint --help`): the same, without a checkpoint")
      ->excludes(model_opt);
  cmd->callback([&exit_code, gpu_present, model, preset] {
    if (!model->empty() || !preset->empty()) {
      const Status st = model->empty() ? print_preset_info(*preset) : print_model_info(*model);
      if (!st.ok()) fmt::print(stderr, "fp8lm: error: {}\n", st.message());
      exit_code = st.ok() ? 0 : 1;
      return;
    }
    std::string why;
    DeviceInfo device;
    Status st = cuda_device_available(&why) ? current_device(&device) : Status::Error("no CUDA device: " + why);
    if (st.ok()) st = check_fp8_support(device);
    if (*gpu_present) {
      exit_code = st.ok() ? 0 : 1;
      return;
    }
    if (st.ok()) {
      fmt::print("GPU {}: {} (sm_{}, {} SMs, {:.0f} GiB, {} MB L2)\n", device.ordinal, device.name, device.sm_version(),
                 device.sm_count, device.global_mem_bytes / double(1ull << 30), device.l2_bytes >> 20);
    } else {
      fmt::print("GPU: {}\nfp8lm runs on the CPU backend here.\n", st.message());
    }
    fmt::print("GEMM configurations compiled in:");
    for (const GemmConfig& c : gemm_configs()) fmt::print(" {}", c.name());
    fmt::print("\n");
    exit_code = 0;
  });
}

}  // namespace fp8lm::cli
