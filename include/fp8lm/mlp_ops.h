// GEMMs fused with the elementwise op after them (decode: one launch instead of two).
//
// The dense MLP's gate_up GEMM and its SiLU·up + quantize as one op: gemm.h's product into `out`
// ([gate | up] rows), then silu_mul_quantize (layer_ops.h) of those rows, bit for bit the two ops.
// On an sm_90 GPU, for up to kGateUpSwigluMaxRows rows, with `counters`, one launch: the decode
// GEMM's CTAs that finish a 128-channel group's gate and up columns last quantize that group
// (kernels/gemm/sm90_blockwise.cu); otherwise the two launches.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "fp8lm/gemm.h"
#include "fp8lm/grouped_gemm.h"
#include "fp8lm/layer_ops.h"
#include "fp8lm/status.h"

namespace fp8lm {

inline constexpr int kGateUpSwigluMaxRows = 16;

struct GateUpSwigluArgs {
  Fp8GemmArgs gemm;         // out: [m, 2 * inter] bf16, the gate then the up columns of each row
  // act.gate_up == gemm.out, act.n == gemm.m, 2 * act.inter == gemm.n; act.q8 and act.scales must
  // not be the GEMM's input (on the GPU the first groups are written while other CTAs still read it).
  SiluMulQuantizeArgs act;
  // GPU, optional: gate_up_swiglu_counters(act.inter) ints in device memory, zero before the first
  // call; each call leaves them zero. Calls sharing them must not run concurrently.
  int* counters = nullptr;
};

// The MoE form: every expert's gate_up in one grouped GEMM (grouped_gemm.h), then
// silu_mul_quantize of all its rows. One launch on an sm_90 GPU with `counters` when no expert has
// more than kGateUpSwigluMaxRows rows (decode): a counter set per expert slot.
struct GroupedGateUpSwigluArgs {
  Fp8GroupedGemmArgs gemm;  // out: [total_rows, 2 * inter]
  // act.gate_up == gemm.out, act.n == gemm.total_rows, 2 * act.inter == gemm.n; act.q8 and
  // act.scales must not be the GEMM's input.
  SiluMulQuantizeArgs act;
  int* counters = nullptr;  // GPU, optional: grouped_gate_up_swiglu_counters(...) ints, zero; left zero
};
inline std::size_t grouped_gate_up_swiglu_counters(int num_experts, int inter) {
  return static_cast<std::size_t>(num_experts) * ceil_div(inter, kQuantGroup);
}
Status validate(const GroupedGateUpSwigluArgs& args);
Status grouped_gate_up_swiglu(const GroupedGateUpSwigluArgs& args, cudaStream_t stream);
namespace cpu {
// Twin: cpu::gemm_fp8_grouped then cpu::silu_mul_quantize.
Status grouped_gate_up_swiglu(const GroupedGateUpSwigluArgs& args);
}  // namespace cpu

// A GEMM whose output is added to the residual stream, then the next norm: gemm.h's product into
// `out`, then rmsnorm_quantize with residual = out (x = bf16(x + out), normed, quantized), bit for
// bit the two ops. On an sm_90 GPU, for up to kGateUpSwigluMaxRows rows, with `counter`, one
// launch: the decode GEMM's CTA that stores its share of the output last (counted through
// `counter`) runs the norm for every row. norm.q8 may be the GEMM's own input (it is written only
// after every CTA has read its input).
struct GemmAddNormArgs {
  Fp8GemmArgs gemm;          // out: [m, dim] bf16, the residual delta
  RmsNormQuantizeArgs norm;  // norm.residual == gemm.out, norm.rows == gemm.m, norm.dim == gemm.n
  int* counter = nullptr;    // GPU, optional: one int in device memory, zero; each call leaves it zero
};

Status validate(const GemmAddNormArgs& args);
Status gemm_add_norm(const GemmAddNormArgs& args, cudaStream_t stream);
namespace cpu {
// Twin: cpu::gemm_fp8_blockwise then cpu::rmsnorm_quantize.
Status gemm_add_norm(const GemmAddNormArgs& args);
}  // namespace cpu

// The counters one gate_up_swiglu call needs (one per 128-channel group of the activation).
inline std::size_t gate_up_swiglu_counters(int inter) { return static_cast<std::size_t>(ceil_div(inter, kQuantGroup)); }

// Checks both halves and that the second reads what the first writes; the GPU op and the twin call it.
Status validate(const GateUpSwigluArgs& args);

// GPU: validates, then enqueues on `stream`.
Status gate_up_swiglu(const GateUpSwigluArgs& args, cudaStream_t stream);

namespace cpu {
// Twin: cpu::gemm_fp8_blockwise then cpu::silu_mul_quantize.
Status gate_up_swiglu(const GateUpSwigluArgs& args);
}  // namespace cpu

}  // namespace fp8lm
