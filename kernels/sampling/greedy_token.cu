// The greedy token op (fp8lm/layer_ops.h, GreedyTokenArgs): the argmax of one row of logits, written
// back as the next decode step's token and position, so that a decode step feeds the next without
// the host. The host then copies 4 bytes per token instead of the vocabulary's logits (608 KB for
// Qwen3) and does not scan them: the kernel trace showed that host work between decode graphs
// taking a third of a 0.6B step (docs/engine.md, "The kernel trace").
// One CTA: 152K logits (608 KB, just written by the lm_head, in L2) are a few microseconds of one
// SM's loads; more CTAs would need a second pass or a last-CTA merge for little gain.
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <cmath>

#include "common/pdl.cuh"
#include "fp8lm/cuda_status.h"
#include "fp8lm/layer_ops.h"

namespace fp8lm {

namespace {

constexpr int kThreads = 1024;
constexpr int kUnroll = 4;  // independent 16-byte loads in flight per thread

// (value, index) candidates: the larger value wins, the smaller index on equal values; NaN never
// wins (it compares false), so an all-NaN row keeps the empty candidate (index INT_MAX).
struct Candidate {
  float value;
  int index;
};

__device__ __forceinline__ void offer(Candidate& c, float value, int index) {
  if (value > c.value || (value == c.value && index < c.index)) c = {value, index};
}

__global__ void __launch_bounds__(kThreads) greedy_token_kernel(const float* __restrict__ logits, int vocab,
                                                                std::int32_t* step, std::int32_t* host_tokens,
                                                                int ring, bool vec4) {
  pdl_wait();
  pdl_launch_dependents();
  Candidate best{-INFINITY, INT_MAX};
  const int t = threadIdx.x;
  if (vec4) {
    const float4* v4 = reinterpret_cast<const float4*>(logits);
    const int vectors = vocab / 4;
    for (int base = t; base < vectors; base += kThreads * kUnroll) {
      float4 v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int i = base + u * kThreads;
        v[u] = i < vectors ? v4[i] : make_float4(NAN, NAN, NAN, NAN);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int i = 4 * (base + u * kThreads);
        offer(best, v[u].x, i);
        offer(best, v[u].y, i + 1);
        offer(best, v[u].z, i + 2);
        offer(best, v[u].w, i + 3);
      }
    }
  } else {
    for (int i = t; i < vocab; i += kThreads) offer(best, logits[i], i);
  }
  // Within the warp, then across warps through shared memory (warp 0 merges).
  for (int mask = 16; mask > 0; mask >>= 1)
    offer(best, __shfl_xor_sync(0xffffffffu, best.value, mask), __shfl_xor_sync(0xffffffffu, best.index, mask));
  __shared__ Candidate warps[kThreads / 32];
  if (t % 32 == 0) warps[t / 32] = best;
  __syncthreads();
  if (t >= 32) return;
  best = warps[t];
  for (int mask = 16; mask > 0; mask >>= 1)
    offer(best, __shfl_xor_sync(0xffffffffu, best.value, mask), __shfl_xor_sync(0xffffffffu, best.index, mask));
  if (t == 0) {
    const int token = best.index == INT_MAX ? 0 : best.index;
    const int position = step[1];
    step[0] = token;
    step[1] = position + 1;
    if (host_tokens != nullptr) host_tokens[position % ring] = token;
  }
}

}  // namespace

Status greedy_token(const GreedyTokenArgs& a, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  const bool vec4 = a.vocab % 4 == 0 && reinterpret_cast<std::uintptr_t>(a.logits) % 16 == 0;
  return cuda_status(launch_pdl(greedy_token_kernel, 1, kThreads, 0, stream, a.logits, a.vocab, a.step, a.host_tokens,
                                a.ring, vec4),
                     "greedy_token launch");
}

}  // namespace fp8lm
