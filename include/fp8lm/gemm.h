// FP8 blockwise GEMM (DeepSeek-V3 / Qwen3-FP8 scaling):
//
//   out[m, n] = sum_k  A[m, k] * a_scales[m, k/128]  *  B[n, k] * b_scales[n/128, k/128]
//
// A: activations [m, k] row-major FP8 e4m3, scales [m, ceil(k/128)] fp32 row-major (1x128).
// B: weights     [n, k] row-major FP8 e4m3 (k contiguous), scales [ceil(n/128), ceil(k/128)] fp32.
// out: bf16 [m, n] row-major. Accumulation is fp32, promoted (scaled and added) once per 128-k block.
//
// Any m >= 1 and any n >= 1; k must be a multiple of 16 (16-byte loads). m == 0 is a no-op.
// Pointers must be 16-byte aligned.
#pragma once

#include <cuda_runtime_api.h>

#include <span>
#include <string>

#include "fp8lm/device.h"
#include "fp8lm/numerics.h"
#include "fp8lm/status.h"

namespace fp8lm {

struct Fp8GemmArgs {
  const fp8_e4m3* a;      // [m, k]
  const float* a_scales;  // [m, ceil(k/128)]
  const fp8_e4m3* b;      // [n, k]
  const float* b_scales;  // [ceil(n/128), ceil(k/128)]
  bf16* out;              // [m, n]
  int m;
  int n;
  int k;
};

// Checks pointers, sizes and alignment; the GPU entry point and the CPU twin both call it.
Status validate(const Fp8GemmArgs& args);
// The same checks without `out` (for consumers that write elsewhere, such as the fp64 oracle).
Status validate_gemm_inputs(const Fp8GemmArgs& args);

enum class GemmKernel {
  kSm89Mma,    // mma.sync m16n8k32 e4m3 + cp.async pipeline (native on sm_89, emulated on sm_90)
  kSm90Wgmma,  // sm_90a: TMA + wgmma, warp-specialized, persistent (large M)
  kSm90Decode, // sm_90a: swap-AB wgmma (weights as the 64-row side), split-K over a cluster (small M)
  kGemv,       // sm_89+: weights loaded straight into mma.sync fragments, split-K in the CTA (m <= 16;
               // the heuristic picks it up to 8, when FP8LM_GEMV_MAX_MB allows)
};

// One compiled tile configuration of a GEMM kernel.
struct GemmConfig {
  GemmKernel kernel;
  int block_m;
  int block_n;
  int stages;   // shared-memory pipeline depth
  // kSm90Decode: block_m = tokens per tile (the wgmma N), block_n = 64 weight rows per CTA.
  // kGemv: block_m = tokens per CTA, block_n = weight rows per CTA, stages = k-blocks in flight.
  // split_k: CTAs (one cluster) that share one output tile's K range; 0 = chosen at launch.
  int split_k = 0;
  // kSm90Wgmma: CTAs per cluster along m that share (TMA-multicast) each B tile; 1 = no cluster.
  int cluster_m = 1;
  std::string name() const;  // e.g. "sm89_m64n128s4"
};

// Every configuration compiled into this build (tests force each one that runs on the device).
std::span<const GemmConfig> gemm_configs();

// Whether `config` can run on `device` (the sm90 kernels need an sm_90 GPU; forcing one elsewhere
// returns an error instead of launching).
bool gemm_config_runs_on(const GemmConfig& config, const DeviceInfo& device);

// Whether `config` takes a GEMM of `rows` rows (grouped: rows of one expert). Every kernel but the
// GEMV takes any; the GEMV (kGemv) re-reads the weights per 8 tokens, so it refuses more than 16.
bool gemm_config_takes_rows(const GemmConfig& config, int rows);

// The accumulation tolerance (relative to sum |a b|) of `config`'s numerics for the oracle check:
// kAccumTolFp32 for fp32 accumulation, kAccumTolWgmmaFp8 for Hopper FP8 wgmma (oracle_check.h).
double gemm_accumulation_tolerance(const GemmConfig& config);

// The heuristic: which configuration to run for this shape on this device.
GemmConfig pick_gemm_config(int m, int n, int k, const DeviceInfo& device);

// The public entry point: validates, picks a configuration (or runs `force`), launches on
// `stream`. Never launches on invalid arguments; returns the reason instead.
Status gemm_fp8_blockwise(const Fp8GemmArgs& args, cudaStream_t stream,
                          const GemmConfig* force = nullptr);

}  // namespace fp8lm
