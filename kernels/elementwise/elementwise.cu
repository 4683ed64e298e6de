// The elementwise layer ops, 16-byte vectors of 8 bf16, grid-stride loops:
//  - embed: one CTA per token copies its table row (NaN row for an id outside [0, vocab));
//  - silu_mul: out = bf16(bf16(silu(gate)) * up) with the twin's exp_f32 (bit-exact);
//  - add: x = bf16(x + y), with a scalar tail when count % 8 != 0;
//  - silu_mul_quantize: one warp per (token, 128-channel group) as the quantizer, each lane
//    computing silu_mul's value for 4 channels (8-byte loads) and quantizing with
//    quantize_group_warp.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "common/bf16_vec.cuh"
#include "common/pdl.cuh"
#include "common/quant_group.cuh"
#include "elementwise/silu_mul_quantize_group.cuh"
#include "fp8lm/cuda_status.h"
#include "fp8lm/layer_math.h"
#include "fp8lm/layer_ops.h"

namespace fp8lm {

namespace {

constexpr int kThreads = 256;
constexpr int kVec = 8;
// Enough CTAs to fill any current card several times over; grid-stride loops cover the rest.
constexpr long long kMaxBlocks = 4096;

unsigned blocks_for(long long work_items) {
  return static_cast<unsigned>(std::clamp<long long>((work_items + kThreads - 1) / kThreads, 1, kMaxBlocks));
}

__global__ void __launch_bounds__(kThreads)
    embed_kernel(const std::int32_t* __restrict__ tokens, const bf16* __restrict__ table, bf16* __restrict__ out,
                 int vocab, int hidden) {
  pdl_wait();
  pdl_launch_dependents();
  const int t = blockIdx.x;
  const std::int32_t id = tokens[t];
  const int vectors = hidden / kVec;
  uint4* dst = reinterpret_cast<uint4*>(out + static_cast<std::size_t>(t) * hidden);
  if (id < 0 || id >= vocab) {
    for (int v = threadIdx.x; v < vectors; v += kThreads) dst[v] = make_uint4(~0u, ~0u, ~0u, ~0u);
    return;
  }
  const uint4* src = reinterpret_cast<const uint4*>(table + static_cast<std::size_t>(id) * hidden);
  for (int v = threadIdx.x; v < vectors; v += kThreads) dst[v] = src[v];
}

__global__ void __launch_bounds__(kThreads)
    silu_mul_kernel(const bf16* __restrict__ gate_up, bf16* __restrict__ out, int n, int inter) {
  pdl_wait();
  pdl_launch_dependents();
  const int per_row = inter / kVec;
  const long long total = static_cast<long long>(n) * per_row;
  for (long long i = blockIdx.x * static_cast<long long>(kThreads) + threadIdx.x; i < total;
       i += static_cast<long long>(gridDim.x) * kThreads) {
    const long long t = i / per_row;
    const int v = static_cast<int>(i % per_row);
    const uint4* row = reinterpret_cast<const uint4*>(gate_up + t * 2 * inter);
    float g[kVec], u[kVec];
    vec::unpack8(row[v], g);
    vec::unpack8(row[per_row + v], u);
#pragma unroll
    for (int k = 0; k < kVec; ++k) g[k] = silu_mul_value(g[k], u[k]);
    reinterpret_cast<uint4*>(out + t * inter)[v] = vec::pack8(g);
  }
}

constexpr int kQuantWarps = kThreads / 32;

__global__ void __launch_bounds__(kThreads)
    silu_mul_quantize_kernel(const bf16* __restrict__ gate_up, std::uint32_t* __restrict__ q8,
                             float* __restrict__ scales, int n, int inter) {
  pdl_wait();
  pdl_launch_dependents();
  QuantGroupLane at;
  if (!quant_group_lane<kQuantWarps>(n, inter, at)) return;
  const int t = at.row, col = at.col;
  const float scale = silu_mul_quantize_group(gate_up + static_cast<std::size_t>(t) * 2 * inter, inter, col, at.active,
                                              q8 + (static_cast<std::size_t>(t) * inter + col) / 4);
  if (at.lane == 0) scales[static_cast<std::size_t>(t) * at.groups + at.group] = scale;
}

__global__ void __launch_bounds__(kThreads) add_kernel(bf16* __restrict__ x, const bf16* __restrict__ y, std::size_t count) {
  pdl_wait();
  pdl_launch_dependents();
  const std::size_t vectors = count / kVec;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * kThreads;
  const std::size_t first = static_cast<std::size_t>(blockIdx.x) * kThreads + threadIdx.x;
  for (std::size_t i = first; i < vectors; i += stride) {
    float a[kVec], b[kVec];
    vec::unpack8(reinterpret_cast<const uint4*>(x)[i], a);
    vec::unpack8(reinterpret_cast<const uint4*>(y)[i], b);
#pragma unroll
    for (int k = 0; k < kVec; ++k) a[k] = __fadd_rn(a[k], b[k]);
    reinterpret_cast<uint4*>(x)[i] = vec::pack8(a);
  }
  const std::size_t tail = vectors * kVec + first;
  if (tail < count) {
    const float s = __fadd_rn(__bfloat162float(reinterpret_cast<const __nv_bfloat16*>(x)[tail]),
                              __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(y)[tail]));
    reinterpret_cast<__nv_bfloat16*>(x)[tail] = __float2bfloat16_rn(s);
  }
}

}  // namespace

Status embed(const EmbedArgs& a, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  if (a.n == 0) return Status::Ok();
  if (a.hidden % kVec != 0)
    return Status::Error("embed: hidden = " + std::to_string(a.hidden) + " must be a multiple of 8 (16-byte rows)");
  if (!vec::aligned16(a.table) || !vec::aligned16(a.out))
    return Status::Error("embed: table and out must be 16-byte aligned");
  if (a.n > 0x7fffffff) return Status::Error("embed: too many tokens");
  return cuda_status(launch_pdl(embed_kernel, a.n, kThreads, 0, stream, a.tokens, a.table, a.out, a.vocab, a.hidden),
                     "embed launch");
}

Status silu_mul(const SiluMulArgs& a, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  if (a.n == 0) return Status::Ok();
  if (a.inter % kVec != 0)
    return Status::Error("silu_mul: inter = " + std::to_string(a.inter) + " must be a multiple of 8 (16-byte loads)");
  if (!vec::aligned16(a.gate_up) || !vec::aligned16(a.out))
    return Status::Error("silu_mul: gate_up and out must be 16-byte aligned");
  return cuda_status(launch_pdl(silu_mul_kernel, blocks_for(static_cast<long long>(a.n) * (a.inter / kVec)), kThreads,
                                0, stream, a.gate_up, a.out, a.n, a.inter),
                     "silu_mul launch");
}

Status silu_mul_quantize(const SiluMulQuantizeArgs& a, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  if (a.n == 0) return Status::Ok();
  if (!vec::aligned16(a.gate_up) || !vec::aligned16(a.q8) || !vec::aligned16(a.scales))
    return Status::Error("silu_mul_quantize: gate_up, q8 and scales must be 16-byte aligned");
  const long long blocks = quant_group_blocks(a.n, a.inter, kQuantWarps);
  if (blocks > 0x7fffffffLL) return Status::Error("silu_mul_quantize: n * inter is too large for one launch");
  return cuda_status(launch_pdl(silu_mul_quantize_kernel, static_cast<unsigned>(blocks), kThreads, 0, stream, a.gate_up,
                                reinterpret_cast<std::uint32_t*>(a.q8), a.scales, a.n, a.inter),
                     "silu_mul_quantize launch");
}

Status add(const AddArgs& a, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  if (a.count == 0) return Status::Ok();
  if (!vec::aligned16(a.x) || !vec::aligned16(a.y)) return Status::Error("add: x and y must be 16-byte aligned");
  return cuda_status(
      launch_pdl(add_kernel, blocks_for(static_cast<long long>(std::max<std::size_t>(a.count / kVec, 1))), kThreads, 0,
                 stream, a.x, a.y, a.count),
      "add launch");
}

}  // namespace fp8lm
