// The public GEMM entry point: validate, check the GPU, pick (or take) a configuration, launch.
#include <algorithm>
#include <string>
#include <vector>

#include "common/bf16_vec.cuh"
#include "common/knobs.h"
#include "fp8lm/cuda_status.h"
#include "fp8lm/gemm.h"
#include "fp8lm/grouped_gemm.h"
#include "fp8lm/mlp_ops.h"
#include "fp8lm/oracle_check.h"
#include "gemm/gemv.h"
#include "gemm/sm89_blockwise.h"
#include "gemm/sm90_blockwise.h"

namespace fp8lm {

std::string GemmConfig::name() const {
  std::string s;
  switch (kernel) {
    case GemmKernel::kSm89Mma: s = "sm89"; break;
    case GemmKernel::kSm90Wgmma: s = "sm90"; break;
    case GemmKernel::kSm90Decode: s = "sm90dec"; break;  // m = tokens per tile, n = weight rows per CTA
    case GemmKernel::kGemv: s = "gemv"; break;          // m = tokens per CTA, n = weight rows per CTA
  }
  s.append("_m").append(std::to_string(block_m)).append("n").append(std::to_string(block_n));
  s.append("s").append(std::to_string(stages));
  if (kernel == GemmKernel::kSm90Wgmma && cluster_m > 1) s.append("c").append(std::to_string(cluster_m));
  if (kernel == GemmKernel::kSm90Decode && split_k > 0) s.append("k").append(std::to_string(split_k));
  return s;
}

double gemm_accumulation_tolerance(const GemmConfig& config) {
  return config.kernel == GemmKernel::kSm89Mma || config.kernel == GemmKernel::kGemv ? kAccumTolFp32
                                                                                      : kAccumTolWgmmaFp8;
}

bool gemm_config_runs_on(const GemmConfig& config, const DeviceInfo& device) {
  switch (config.kernel) {
    case GemmKernel::kSm89Mma:
    case GemmKernel::kGemv:
      return device.sm_version() >= 89;
    case GemmKernel::kSm90Wgmma:
    case GemmKernel::kSm90Decode:
      return device.sm_version() == 90;  // sm_90a instructions: wgmma, setmaxnreg
  }
  return false;
}

bool gemm_config_takes_rows(const GemmConfig& config, int rows) {
  return config.kernel != GemmKernel::kGemv || rows <= gemv::kMaxRows;
}

std::span<const GemmConfig> gemm_configs() {
  static const std::vector<GemmConfig> all = [] {
    std::vector<GemmConfig> v;
    for (const GemmConfig& c : sm89::configs()) v.push_back(c);
    for (const GemmConfig& c : sm90::configs()) v.push_back(c);
    for (const GemmConfig& c : gemv::configs()) v.push_back(c);
    return v;
  }();
  return all;
}

namespace {
// The current device, refused unless it runs FP8.
Status fp8_device(DeviceInfo* device) {
  FP8LM_RETURN_IF_ERROR(current_device(device));
  return check_fp8_support(*device);
}

// Whether gate_up_swiglu (fp8lm/mlp_ops.h) runs as one launch: the swiglu fusion on, its counters
// given, the GEMM on the 16-token decode configuration for at most kGateUpSwigluMaxRows rows (per
// expert), and an activation the epilogue can write (whole 128-channel groups, 16-byte aligned).
bool swiglu_fuses(const GemmConfig& config, int rows, const int* counters, const SiluMulQuantizeArgs& act) {
  return decode_fusion_enabled(DecodeFusion::kSwiglu) && counters != nullptr &&
         config.kernel == GemmKernel::kSm90Decode && config.block_m == 16 && rows <= kGateUpSwigluMaxRows &&
         act.inter % kQuantGroup == 0 && vec::aligned16(act.q8) && vec::aligned16(act.scales);
}
}  // namespace

Status gemm_fp8_blockwise(const Fp8GemmArgs& args, cudaStream_t stream, const GemmConfig* force) {
  FP8LM_RETURN_IF_ERROR(validate(args));
  if (args.m == 0) return Status::Ok();
  DeviceInfo device;
  FP8LM_RETURN_IF_ERROR(fp8_device(&device));
  const GemmConfig config = force ? *force : pick_gemm_config(args.m, args.n, args.k, device);
  switch (config.kernel) {
    case GemmKernel::kSm89Mma:
      return sm89::launch(args, config, device, stream);
    case GemmKernel::kSm90Wgmma:
    case GemmKernel::kSm90Decode:
      return sm90::launch_sm90_blockwise(args, config, device, stream);
    case GemmKernel::kGemv:
      return gemv::launch(args, config, stream);
  }
  return Status::Error("gemm_fp8_blockwise: unknown kernel in configuration " + config.name());
}

Status gate_up_swiglu(const GateUpSwigluArgs& a, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  if (a.gemm.m == 0) return Status::Ok();
  DeviceInfo device;
  FP8LM_RETURN_IF_ERROR(fp8_device(&device));
  const GemmConfig config = pick_gemm_config(a.gemm.m, a.gemm.n, a.gemm.k, device);
  if (swiglu_fuses(config, a.gemm.m, a.counters, a.act))
    return sm90::launch_sm90_gate_up_swiglu(a.gemm, {a.act.q8, a.act.scales, a.counters}, config, device, stream);
  FP8LM_RETURN_IF_ERROR(gemm_fp8_blockwise(a.gemm, stream, &config));
  return silu_mul_quantize(a.act, stream);
}

Status grouped_gate_up_swiglu(const GroupedGateUpSwigluArgs& a, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  if (a.gemm.total_rows == 0) return Status::Ok();
  DeviceInfo device;
  FP8LM_RETURN_IF_ERROR(fp8_device(&device));
  const Fp8GroupedGemmArgs& g = a.gemm;
  const GemmConfig config =
      pick_grouped_gemm_config(g.total_rows, g.max_rows_per_expert, g.num_experts, g.n, g.k, device);
  if (swiglu_fuses(config, std::min(g.max_rows_per_expert, g.total_rows), a.counters, a.act))
    return sm90::launch_sm90_grouped_gate_up_swiglu(g, {a.act.q8, a.act.scales, a.counters}, config, device, stream);
  FP8LM_RETURN_IF_ERROR(gemm_fp8_grouped(g, stream, &config));
  return silu_mul_quantize(a.act, stream);
}

Status gemm_fp8_grouped(const Fp8GroupedGemmArgs& args, cudaStream_t stream, const GemmConfig* force) {
  FP8LM_RETURN_IF_ERROR(validate(args));
  if (args.total_rows == 0) return Status::Ok();
  DeviceInfo device;
  FP8LM_RETURN_IF_ERROR(fp8_device(&device));
  const GemmConfig config =
      force ? *force
            : pick_grouped_gemm_config(args.total_rows, args.max_rows_per_expert, args.num_experts, args.n, args.k, device);
  switch (config.kernel) {
    case GemmKernel::kSm89Mma:
      return sm89::launch_grouped(args, config, device, stream);
    case GemmKernel::kSm90Wgmma:
    case GemmKernel::kSm90Decode:
      return sm90::launch_sm90_grouped(args, config, device, stream);
    case GemmKernel::kGemv:
      return gemv::launch_grouped(args, config, stream);
  }
  return Status::Error("gemm_fp8_grouped: unknown kernel in configuration " + config.name());
}

}  // namespace fp8lm
