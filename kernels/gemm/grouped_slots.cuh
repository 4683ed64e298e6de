// Grouped GEMMs at decode: a launch's grid covers min(num_experts, total_rows) expert slots (the
// experts that can have rows), not all experts, and each CTA finds which expert its slot is.
#pragma once

#include <cstdint>

#include "fp8lm/grouped_gemm.h"

namespace fp8lm {

// The index of the slot-th expert (in index order) with rows, or -1 when fewer experts have rows.
// Called by every thread of the CTA (kThreads of them, a multiple of 32): a ballot count per
// kThreads experts.
// Offsets read through L2 only (ld.global.cg), for a kernel that reads them before waiting for
// its predecessor (Fp8GroupedGemmArgs::offsets_settled): no L1 line of an earlier layer's read.
struct L2Offsets {
  const std::int32_t* p;
  __device__ std::int32_t operator[](int i) const { return __ldcg(p + i); }
};

template <int kThreads, typename Offsets>
__device__ int nth_expert_with_rows(const Offsets& offsets, int num_experts, int total_rows, int slot) {
  constexpr int kWarps = kThreads / 32;
  __shared__ int warp_counts[kWarps];
  __shared__ int found;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (threadIdx.x == 0) found = -1;
  for (int base = 0; base < num_experts; base += kThreads) {
    const int e = base + threadIdx.x;
    bool has_rows = false;
    if (e < num_experts) {
      const ExpertRows r = expert_rows(offsets, e, total_rows);
      has_rows = r.end > r.begin;
    }
    const unsigned ballot = __ballot_sync(~0u, has_rows);
    if (lane == 0) warp_counts[warp] = __popc(ballot);
    __syncthreads();
    int before = 0, total = 0;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      before += w < warp ? warp_counts[w] : 0;
      total += warp_counts[w];
    }
    if (has_rows && before + __popc(ballot & ((1u << lane) - 1)) == slot) found = e;
    slot -= total;
    __syncthreads();  // `found` is visible; warp_counts may be rewritten
    if (found >= 0) break;
  }
  return found;
}

}  // namespace fp8lm
