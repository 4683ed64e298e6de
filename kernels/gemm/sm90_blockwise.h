// Hopper (sm_90a) FP8 blockwise GEMM launchers: TMA + wgmma. See sm90_blockwise.cu for the design.
#pragma once

#include <cuda_runtime_api.h>

#include <span>

#include "fp8lm/device.h"
#include "fp8lm/gemm.h"
#include "fp8lm/grouped_gemm.h"
#include "fp8lm/status.h"

namespace fp8lm::sm90 {

// The decode kernel's optional epilogue for the MLP's gate_up, dense or grouped (fp8lm/mlp_ops.h):
// with q8 set, after storing its share of the tile, each CTA counts itself into its 128-channel
// group's counter, and the last of the group's producers (its two gate and two up 64-row tiles,
// every cluster rank) writes silu_mul_quantize of that group; the counter is left at zero.
struct SwigluEpilogue {
  fp8_e4m3* q8 = nullptr;  // [m, n / 2]
  float* scales = nullptr;  // [m, n / 256]
  int* counters = nullptr;  // [n / 256] (grouped: per grid row y, an expert slot), zero
};

// Every compiled sm90 configuration (kSm90Wgmma tiles, kSm90Decode token tiles).
std::span<const GemmConfig> configs();

// Runs `config` (kernel kSm90Wgmma or kSm90Decode, a compiled tile shape) on `stream`. The
// arguments must already have passed validate(). Returns an error (and launches nothing) when the
// device is not sm_90, the configuration is not compiled, or the driver cannot encode the TMA maps.
Status launch_sm90_blockwise(const Fp8GemmArgs& args, const GemmConfig& config,
                             const DeviceInfo& device, cudaStream_t stream);

// The same with the gate_up epilogue: `config` must be the 16-token decode configuration, m <= 16,
// n a multiple of 256 (else an error, nothing launched).
Status launch_sm90_gate_up_swiglu(const Fp8GemmArgs& args, const SwigluEpilogue& epilogue, const GemmConfig& config,
                                  const DeviceInfo& device, cudaStream_t stream);
// The grouped form (MoE decode: every expert's gate_up), at most 16 rows per expert; counters
// [min(num_experts, total_rows) * n / 256].
Status launch_sm90_grouped_gate_up_swiglu(const Fp8GroupedGemmArgs& args, const SwigluEpilogue& epilogue,
                                          const GemmConfig& config, const DeviceInfo& device, cudaStream_t stream);

// The grouped (MoE) form of the same kernels and production configurations (GROUPED in
// sm90_blockwise.cu; the FP8LM_SM90_EXPERIMENTS ones are dense only):
// arguments validated, total_rows == 0 a no-op. Same errors as launch_sm90_blockwise.
Status launch_sm90_grouped(const Fp8GroupedGemmArgs& args, const GemmConfig& config, const DeviceInfo& device,
                           cudaStream_t stream);

}  // namespace fp8lm::sm90
