// The public GEMM entry point: validate, check the GPU, pick (or take) a configuration, launch.
#include <string>
#include <vector>

#include "common/cuda_check.h"
#include "fp8lm/gemm.h"
#include "gemm/sm89_blockwise.h"

namespace fp8lm {

std::string GemmConfig::name() const {
  const char* kind = "sm89";
  return std::string(kind) + "_m" + std::to_string(block_m) + "n" + std::to_string(block_n) + "s" +
         std::to_string(stages);
}

std::span<const GemmConfig> gemm_configs() {
  static const std::vector<GemmConfig> all = [] {
    std::vector<GemmConfig> v;
    for (const GemmConfig& c : sm89::configs()) v.push_back(c);
    return v;
  }();
  return all;
}

Status gemm_fp8_blockwise(const Fp8GemmArgs& args, cudaStream_t stream, const GemmConfig* force) {
  FP8LM_RETURN_IF_ERROR(validate(args));
  if (args.m == 0) return Status::Ok();
  DeviceInfo device;
  FP8LM_RETURN_IF_ERROR(current_device(&device));
  FP8LM_RETURN_IF_ERROR(check_fp8_support(device));
  const GemmConfig config = force ? *force : pick_gemm_config(args.m, args.n, args.k, device);
  switch (config.kernel) {
    case GemmKernel::kSm89Mma:
      return sm89::launch(args, config, device, stream);
  }
  return Status::Error("gemm_fp8_blockwise: unknown kernel in configuration " + config.name());
}

}  // namespace fp8lm
