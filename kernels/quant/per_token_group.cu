// Per-token-group activation quantization: bf16 [m, k] -> FP8 [m, k] + fp32 scales [m, ceil(k/128)].
//
// One warp per (row, 128-channel group): each lane loads 4 bf16 (8 bytes), the warp reduces amax
// with shuffles, and each lane stores 4 FP8 codes (4 bytes). Memory bound: 3 bytes per element
// plus 4 bytes per group. With a gather (QuantizeArgs::rows) the warp reads input row rows[r]; an
// index outside [0, in_rows) reads as NaN (the bf16 NaN 0x7FC0 as fp32), so the row's codes and
// scale are those of a NaN row.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "fp8lm/cuda_status.h"
#include "common/pdl.cuh"
#include "common/quant_group.cuh"
#include "fp8lm/quant.h"

namespace fp8lm {

namespace {

constexpr int kWarpsPerBlock = 8;

__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    quantize_per_token_group_kernel(const __nv_bfloat16* __restrict__ in, std::uint32_t* __restrict__ out,
                                    float* __restrict__ scales, int m, int k, const std::int32_t* __restrict__ rows,
                                    int in_rows) {
  pdl_wait();
  pdl_launch_dependents();
  QuantGroupLane at;
  if (!quant_group_lane<kWarpsPerBlock>(m, k, at)) return;
  const std::size_t offset = static_cast<std::size_t>(at.row) * k + at.col;
  const int in_row = rows != nullptr ? rows[at.row] : at.row;
  const bool in_range = rows == nullptr || (in_row >= 0 && in_row < in_rows);

  float v[kQuantValuesPerLane] = {0.f, 0.f, 0.f, 0.f};
  if (at.active && !in_range) {
    for (float& x : v) x = __uint_as_float(0x7fc00000u);
  } else if (at.active) {
    const uint2 raw = *reinterpret_cast<const uint2*>(in + static_cast<std::size_t>(in_row) * k + at.col);
    const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
    const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
    v[0] = lo.x, v[1] = lo.y, v[2] = hi.x, v[3] = hi.y;
  }
  const float scale = quantize_group_warp(v, at.active, out + offset / 4);
  if (at.lane == 0) scales[static_cast<std::size_t>(at.row) * at.groups + at.group] = scale;
}

}  // namespace

Status quantize_per_token_group(const QuantizeArgs& args, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(validate(args));
  if (args.m == 0) return Status::Ok();
  const long long blocks = quant_group_blocks(args.m, args.k, kWarpsPerBlock);
  if (blocks > 0x7fffffffLL) return Status::Error("quantize_per_token_group: m * k is too large for one launch");
  return cuda_status(launch_pdl(quantize_per_token_group_kernel, static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0,
                                stream, reinterpret_cast<const __nv_bfloat16*>(args.in),
                                reinterpret_cast<std::uint32_t*>(args.out), args.scales, args.m, args.k, args.rows,
                                args.in_rows),
                     "quantize_per_token_group launch");
}

}  // namespace fp8lm
