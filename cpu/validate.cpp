// Argument checks shared by the GPU launchers and their CPU twins: a bad call gets a message that
// names the argument and what was expected, and nothing is launched or written.
#include <cstdint>
#include <limits>
#include <string>

#include "arg_checks.h"
#include "fp8lm/gemm.h"
#include "fp8lm/grouped_gemm.h"
#include "fp8lm/quant.h"

namespace fp8lm {

using arg_checks::need;
using arg_checks::not_null;
using arg_checks::positive;
using arg_checks::str;

namespace {
// The kernels read these operands in 16-byte vectors.
Status check_pointer(const void* p, const char* fn, const char* name) {
  FP8LM_RETURN_IF_ERROR(not_null(p, fn, name));
  return need(reinterpret_cast<std::uintptr_t>(p) % 16 == 0, fn, std::string(name) + " is not 16-byte aligned");
}

Status check_k(const char* fn, int k) {
  FP8LM_RETURN_IF_ERROR(positive(k, fn, "k"));
  return need(k % 16 == 0, fn, "k = " + str(k) + " must be a multiple of 16 (rows are read in 16-byte vectors)");
}
}  // namespace

Status validate_gemm_inputs(const Fp8GemmArgs& args) {
  constexpr const char* fn = "gemm_fp8_blockwise";
  FP8LM_RETURN_IF_ERROR(need(args.m >= 0, fn, "m = " + str(args.m) + " is negative"));
  FP8LM_RETURN_IF_ERROR(positive(args.n, fn, "n"));
  FP8LM_RETURN_IF_ERROR(check_k(fn, args.k));
  if (args.m == 0) return Status::Ok();  // nothing to compute; pointers may be empty
  FP8LM_RETURN_IF_ERROR(check_pointer(args.a, fn, "a (activations [m, k])"));
  FP8LM_RETURN_IF_ERROR(check_pointer(args.a_scales, fn, "a_scales ([m, ceil(k/128)])"));
  FP8LM_RETURN_IF_ERROR(check_pointer(args.b, fn, "b (weights [n, k])"));
  FP8LM_RETURN_IF_ERROR(check_pointer(args.b_scales, fn, "b_scales ([ceil(n/128), ceil(k/128)])"));
  return Status::Ok();
}

Status validate(const Fp8GemmArgs& args) {
  FP8LM_RETURN_IF_ERROR(validate_gemm_inputs(args));
  if (args.m == 0) return Status::Ok();
  return check_pointer(args.out, "gemm_fp8_blockwise", "out ([m, n] bf16)");
}

Status validate(const Fp8GroupedGemmArgs& args) {
  constexpr const char* fn = "gemm_fp8_grouped";
  FP8LM_RETURN_IF_ERROR(need(args.num_experts >= 1 && args.num_experts <= kMaxGroupedExperts, fn,
                             "num_experts = " + str(args.num_experts) + " must be in [1, " + str(kMaxGroupedExperts) +
                                 "]"));
  FP8LM_RETURN_IF_ERROR(need(args.total_rows >= 0, fn, "total_rows = " + str(args.total_rows) + " is negative"));
  FP8LM_RETURN_IF_ERROR(positive(args.n, fn, "n"));
  // The kernels address the stacked weights' rows (expert * n + row) with 32-bit ints.
  const long long stacked_rows = static_cast<long long>(args.num_experts) * args.n;
  FP8LM_RETURN_IF_ERROR(need(stacked_rows <= std::numeric_limits<std::int32_t>::max(), fn,
                             "num_experts * n = " + str(stacked_rows) + " stacked weight rows do not fit in 32 bits"));
  FP8LM_RETURN_IF_ERROR(check_k(fn, args.k));
  if (args.total_rows == 0) return Status::Ok();  // nothing to compute; pointers may be empty
  FP8LM_RETURN_IF_ERROR(need(args.max_rows_per_expert >= 1, fn,
                             "max_rows_per_expert = " + str(args.max_rows_per_expert) +
                                 " must be >= 1 when total_rows > 0 (it sizes the grid)"));
  FP8LM_RETURN_IF_ERROR(check_pointer(args.a, fn, "a (activations [total_rows, k])"));
  FP8LM_RETURN_IF_ERROR(check_pointer(args.a_scales, fn, "a_scales ([total_rows, ceil(k/128)])"));
  FP8LM_RETURN_IF_ERROR(check_pointer(args.b, fn, "b (stacked weights [num_experts * n, k])"));
  FP8LM_RETURN_IF_ERROR(
      check_pointer(args.b_scales, fn, "b_scales ([num_experts * ceil(n/128), ceil(k/128)])"));
  FP8LM_RETURN_IF_ERROR(check_pointer(args.out, fn, "out ([total_rows, n] bf16)"));
  FP8LM_RETURN_IF_ERROR(not_null(args.offsets, fn, "offsets ([num_experts + 1] int32)"));
  return need(reinterpret_cast<std::uintptr_t>(args.offsets) % alignof(std::int32_t) == 0, fn,
              "offsets is not 4-byte aligned");
}

Status validate_grouped_offsets(const Fp8GroupedGemmArgs& args, const std::int32_t* offsets) {
  constexpr const char* fn = "gemm_fp8_grouped";
  FP8LM_RETURN_IF_ERROR(need(offsets[0] == 0, fn, "offsets[0] = " + str(offsets[0]) + " must be 0"));
  for (int e = 0; e < args.num_experts; ++e) {
    // The messages are built only when a check fails: this runs per expert on every call.
    const long long rows = static_cast<long long>(offsets[e + 1]) - offsets[e];
    if (rows < 0)
      return need(false, fn,
                  "offsets decrease at expert " + str(e) + " (" + str(offsets[e]) + " -> " + str(offsets[e + 1]) + ")");
    if (rows > args.max_rows_per_expert)
      return need(false, fn,
                  "expert " + str(e) + " has " + str(rows) + " rows, more than max_rows_per_expert = " +
                      str(args.max_rows_per_expert));
  }
  return need(offsets[args.num_experts] == args.total_rows, fn,
              "offsets[num_experts] = " + str(offsets[args.num_experts]) + " must equal total_rows = " +
                  str(args.total_rows));
}

Status validate(const QuantizeArgs& args) {
  constexpr const char* fn = "quantize_per_token_group";
  FP8LM_RETURN_IF_ERROR(need(args.m >= 0, fn, "m = " + str(args.m) + " is negative"));
  FP8LM_RETURN_IF_ERROR(check_k(fn, args.k));
  if (args.m == 0) return Status::Ok();
  FP8LM_RETURN_IF_ERROR(check_pointer(args.in, fn, "in ([m, k] bf16)"));
  FP8LM_RETURN_IF_ERROR(check_pointer(args.out, fn, "out ([m, k] fp8)"));
  FP8LM_RETURN_IF_ERROR(check_pointer(args.scales, fn, "scales ([m, ceil(k/128)])"));
  return need(args.rows == nullptr || args.in_rows >= 1, fn,
              "in_rows = " + str(args.in_rows) + " must be >= 1 when rows (a gather) is given");
}

}  // namespace fp8lm
