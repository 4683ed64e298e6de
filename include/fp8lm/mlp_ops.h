// The gate_up GEMM fused with the activation after it: at decode one launch instead of two, bit for
// bit the two ops (the CPU twin runs them one after the other). On an sm_90 GPU, for up to
// kGateUpSwigluMaxRows rows (per expert) and with the op's counters, the decode GEMM's CTAs count
// themselves in once their share of the output is stored, and the last one of what a 128-channel
// group needs quantizes it (kernels/gemm/sm90_blockwise.cu); otherwise, and without "swiglu" in
// FP8LM_DECODE_FUSION, the two launches. Counters live in device memory, start at zero and are
// left at zero by every call; calls sharing them must not run concurrently.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "fp8lm/gemm.h"
#include "fp8lm/grouped_gemm.h"
#include "fp8lm/layer_ops.h"
#include "fp8lm/status.h"

namespace fp8lm {

inline constexpr int kGateUpSwigluMaxRows = 16;

// The dense MLP's gate_up GEMM, then silu_mul_quantize (layer_ops.h) of its output rows: the last
// of the CTAs that store a 128-channel group's gate and up columns quantizes that group.
struct GateUpSwigluArgs {
  Fp8GemmArgs gemm;  // out: [m, 2 * inter] bf16, the gate then the up columns of each row
  // act.gate_up == gemm.out, act.n == gemm.m, 2 * act.inter == gemm.n; act.q8 and act.scales must
  // not be the GEMM's input (on the GPU the first groups are written while other CTAs still read it).
  SiluMulQuantizeArgs act;
  int* counters = nullptr;  // GPU, optional: gate_up_swiglu_counters(act.inter) ints
};
inline std::size_t gate_up_swiglu_counters(int inter) { return static_cast<std::size_t>(ceil_div(inter, kQuantGroup)); }
Status validate(const GateUpSwigluArgs& args);
Status gate_up_swiglu(const GateUpSwigluArgs& args, cudaStream_t stream);

// The MoE form: every expert's gate_up in one grouped GEMM (grouped_gemm.h), then
// silu_mul_quantize of all its rows; a counter set per expert slot.
struct GroupedGateUpSwigluArgs {
  Fp8GroupedGemmArgs gemm;  // out: [total_rows, 2 * inter]
  // act.gate_up == gemm.out, act.n == gemm.total_rows, 2 * act.inter == gemm.n; act.q8 and
  // act.scales must not be the GEMM's input.
  SiluMulQuantizeArgs act;
  int* counters = nullptr;  // GPU, optional: grouped_gate_up_swiglu_counters(num_experts, inter) ints
};
inline std::size_t grouped_gate_up_swiglu_counters(int num_experts, int inter) {
  return static_cast<std::size_t>(num_experts) * ceil_div(inter, kQuantGroup);
}
Status validate(const GroupedGateUpSwigluArgs& args);
Status grouped_gate_up_swiglu(const GroupedGateUpSwigluArgs& args, cudaStream_t stream);

namespace cpu {
// Twins: the GEMM twin (cpu::gemm_fp8_blockwise / gemm_fp8_grouped), then the elementwise twin.
Status gate_up_swiglu(const GateUpSwigluArgs& args);
Status grouped_gate_up_swiglu(const GroupedGateUpSwigluArgs& args);
}  // namespace cpu

}  // namespace fp8lm
