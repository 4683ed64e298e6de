// Grouped FP8 blockwise GEMM for MoE experts: every expert's rows in one launch.
//
//   for each expert e, rows r in [offsets[e], offsets[e+1]):
//     out[r, :] = gemm_fp8_blockwise(A[r, :], weights of e)        (gemm.h's product and numerics)
//
// A: the routed activations sorted by expert, [total_rows, k] FP8 + [total_rows, ceil(k/128)] scales.
// B: all experts' weights stacked, [num_experts * n, k] FP8 (expert e's [n, k] at b + e*n*k) and
//    [num_experts * ceil(n/128), ceil(k/128)] scales (expert e's at e * ceil(n/128) * ceil(k/128)).
// offsets: [num_experts + 1] in DEVICE memory (host memory for the CPU twin), so that a MoE layer
//    can compute them on the device and never wait for the host.
//
// Contract on offsets (the GPU cannot check device memory; the CPU twin does, see
// validate_grouped_offsets): offsets[0] = 0, non-decreasing, offsets[num_experts] = total_rows, and
// no expert has more than max_rows_per_expert rows (the host's bound that sizes the grid; in a MoE
// layer the token count is always one). On the GPU, each expert's range is clamped into
// [0, total_rows], so offsets that break the contract give wrong or unwritten rows but never a write
// outside `out`.
//
// Same shape rules as gemm.h (any n >= 1, k a multiple of 16, 16-byte aligned pointers; offsets
// 4-byte aligned); total_rows == 0 is a no-op. Every production configuration of gemm_configs()
// runs grouped (the experiment-only sm_90 ones, FP8LM_SM90_EXPERIMENTS, are dense only).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "fp8lm/device.h"
#include "fp8lm/gemm.h"
#include "fp8lm/numerics.h"
#include "fp8lm/status.h"

namespace fp8lm {

// The sm90 large-M kernel keeps the experts' row ranges and tile counts in shared memory
// (8 bytes per expert); this bound keeps that within the CTA's budget. Qwen3-MoE has 128 experts.
inline constexpr int kMaxGroupedExperts = 1024;

struct Fp8GroupedGemmArgs {
  const fp8_e4m3* a;             // [total_rows, k], rows sorted by expert
  const float* a_scales;         // [total_rows, ceil(k/128)]
  const fp8_e4m3* b;             // [num_experts * n, k]
  const float* b_scales;         // [num_experts * ceil(n/128), ceil(k/128)]
  const std::int32_t* offsets;   // [num_experts + 1], device memory
  bf16* out;                     // [total_rows, n]
  int total_rows;
  int num_experts;
  int n;
  int k;
  int max_rows_per_expert;       // host bound on any expert's rows (sizes the grid)
  // The offsets were complete before the launch just before this one began (a MoE layer's plan
  // runs two launches earlier): the sm_90 decode kernel then looks up its expert and starts its
  // weight stream before waiting for that launch (programmatic dependent launch), as the dense
  // decode kernel does with its weights. False: it waits first (offsets of the kernel just before).
  bool offsets_settled = false;
};

// offsets[e] clamped into [0, total_rows]: offsets that break the contract cannot send a kernel
// outside its buffers (expert e's rows are then [clamped(e), max(clamped(e), clamped(e + 1)))).
// Offsets: a pointer, or anything indexable like one (kernels/gemm/grouped_slots.cuh: L2Offsets).
template <typename Offsets>
FP8LM_HOST_DEVICE int clamped_offset(const Offsets& offsets, int e, int total_rows) {
  const int v = offsets[e] < 0 ? 0 : offsets[e];
  return v < total_rows ? v : total_rows;
}

// Expert e's rows [begin, end) of the grouped problem, from the clamped offsets (end >= begin).
struct ExpertRows {
  int begin, end;
};
template <typename Offsets>
FP8LM_HOST_DEVICE ExpertRows expert_rows(const Offsets& offsets, int e, int total_rows) {
  const int begin = clamped_offset(offsets, e, total_rows), end = clamped_offset(offsets, e + 1, total_rows);
  return {begin, end > begin ? end : begin};
}

// Expert e's dense GEMM on rows [row_begin, row_end) of the grouped problem (the stacked layout's
// arithmetic, in one place for the CPU twin, the sm_89 kernel, tests and benchmarks).
FP8LM_HOST_DEVICE Fp8GemmArgs grouped_expert_args(const Fp8GroupedGemmArgs& g, int e, int row_begin, int row_end) {
  const std::size_t kb = static_cast<std::size_t>(ceil_div(g.k, kQuantGroup));
  const std::size_t n_blocks = static_cast<std::size_t>(ceil_div(g.n, kQuantGroup));
  return Fp8GemmArgs{g.a + static_cast<std::size_t>(row_begin) * g.k,
                     g.a_scales + static_cast<std::size_t>(row_begin) * kb,
                     g.b + static_cast<std::size_t>(e) * g.n * g.k,
                     g.b_scales + static_cast<std::size_t>(e) * n_blocks * kb,
                     g.out + static_cast<std::size_t>(row_begin) * g.n,
                     row_end - row_begin,
                     g.n,
                     g.k};
}

// An upper bound on the row-blocks of `block_m` rows over all experts (it sizes grids; the
// kernels count the real ones from the offsets): each expert has at most min(max_rows_per_expert,
// total_rows) rows, at most min(num_experts, total_rows) experts have any, and a sum of ceilings
// exceeds the ceiling of the sum by less than one per expert. With one expert: ceil(rows/block_m).
FP8LM_HOST_DEVICE long long grouped_row_blocks_bound(int total_rows, int max_rows_per_expert, int num_experts,
                                                     int block_m) {
  const long long rows = max_rows_per_expert < total_rows ? max_rows_per_expert : total_rows;
  const long long groups = num_experts < total_rows ? num_experts : total_rows;
  const long long by_expert = groups * ((rows + block_m - 1) / block_m);
  const long long by_total = (total_rows + block_m - 1) / block_m + groups - 1;
  return by_expert < by_total ? by_expert : by_total;
}

// Checks sizes, pointers and alignment (not the offsets' values, which live on the device).
Status validate(const Fp8GroupedGemmArgs& args);
// Checks the offsets' contract (above) on a host copy `offsets` [num_experts + 1].
Status validate_grouped_offsets(const Fp8GroupedGemmArgs& args, const std::int32_t* offsets);

// The heuristic (kernels/gemm/heuristic.cpp): which configuration runs a grouped problem.
GemmConfig pick_grouped_gemm_config(int total_rows, int max_rows_per_expert, int num_experts, int n, int k,
                                    const DeviceInfo& device);

// Validates, picks a configuration (or runs `force`, any of gemm_configs()), launches on `stream`.
// Never launches on invalid arguments; returns the reason instead. Graph-capturable (no host sync).
Status gemm_fp8_grouped(const Fp8GroupedGemmArgs& args, cudaStream_t stream, const GemmConfig* force = nullptr);

}  // namespace fp8lm
