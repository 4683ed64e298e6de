// One weight row of the lm_head product on one warp: logits[t, row] = x[t] . weight[row] in fp32
// for t < n (lane l: 16-byte vectors l, l + 32, ... of the row, then a butterfly sum). Shared by
// lm_head.cu's row kernel and the MoE router inside moe_router_route_plan (kernels/moe/moe.cu), so
// both give the same bits. preload() before pdl_wait (weights are no kernel's output), run() after.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "common/bf16_vec.cuh"
#include "fp8lm/numerics.h"

namespace fp8lm {

struct LmHeadRow {
  static constexpr int kPreload = 8;  // 16-byte weight vectors per lane: a 2048-wide row entirely
  static constexpr int kVec = 8;      // bf16 per 16-byte vector

  const uint4* wr;
  int vectors;
  uint4 w_pre[kPreload];

  // `row` past vocab reads the last row (its results are not stored).
  __device__ __forceinline__ void preload(const bf16* weight, int row, int hidden, int vocab) {
    const int lane = threadIdx.x % 32;
    vectors = hidden / kVec;
    wr = reinterpret_cast<const uint4*>(weight + static_cast<std::size_t>(min(row, vocab - 1)) * hidden);
#pragma unroll
    for (int i = 0; i < kPreload; ++i)
      if (lane + 32 * i < vectors) w_pre[i] = __ldg(wr + lane + 32 * i);
  }

  __device__ __forceinline__ void run(const bf16* x, float* logits, int row, int n, int hidden, int vocab) const {
    const int lane = threadIdx.x % 32;
    for (int t = 0; t < n; ++t) {
      const uint4* xr = reinterpret_cast<const uint4*>(x + static_cast<std::size_t>(t) * hidden);
      float acc = 0.0f;
#pragma unroll
      for (int i = 0; i < kPreload; ++i)
        if (lane + 32 * i < vectors) {
          float a[kVec], b[kVec];
          vec::unpack8(xr[lane + 32 * i], a);
          vec::unpack8(w_pre[i], b);
#pragma unroll
          for (int k = 0; k < kVec; ++k) acc = fmaf(a[k], b[k], acc);
        }
      for (int v = lane + 32 * kPreload; v < vectors; v += 32) {
        float a[kVec], b[kVec];
        vec::unpack8(xr[v], a);
        vec::unpack8(__ldg(wr + v), b);
#pragma unroll
        for (int k = 0; k < kVec; ++k) acc = fmaf(a[k], b[k], acc);
      }
      acc = vec::warp_butterfly_sum(acc);
      if (lane == 0 && row < vocab) logits[static_cast<std::size_t>(t) * vocab + row] = acc;
    }
  }
};

}  // namespace fp8lm
