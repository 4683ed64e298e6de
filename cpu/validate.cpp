// Argument checks shared by the GPU launchers and their CPU twins: a bad call gets a message that
// names the argument and what was expected, and nothing is launched or written.
#include <cstdint>
#include <limits>
#include <string>

#include "fp8lm/gemm.h"
#include "fp8lm/grouped_gemm.h"
#include "fp8lm/quant.h"

namespace fp8lm {

namespace {
bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

Status check_pointer(const void* p, const char* fn, const char* name) {
  if (p == nullptr) return Status::Error(std::string(fn) + ": " + name + " is a null pointer");
  if (!aligned16(p))
    return Status::Error(std::string(fn) + ": " + name + " is not 16-byte aligned");
  return Status::Ok();
}

Status check_k(const char* fn, int k) {
  if (k <= 0) return Status::Error(std::string(fn) + ": k = " + std::to_string(k) + " must be >= 1");
  if (k % 16 != 0)
    return Status::Error(std::string(fn) + ": k = " + std::to_string(k) +
                         " must be a multiple of 16 (rows are read in 16-byte vectors)");
  return Status::Ok();
}
}  // namespace

Status validate_gemm_inputs(const Fp8GemmArgs& args) {
  constexpr const char* fn = "gemm_fp8_blockwise";
  if (args.m < 0) return Status::Error(std::string(fn) + ": m = " + std::to_string(args.m) + " is negative");
  if (args.n <= 0) return Status::Error(std::string(fn) + ": n = " + std::to_string(args.n) + " must be >= 1");
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
  auto error = [&](const std::string& what) { return Status::Error(std::string(fn) + ": " + what); };
  if (args.num_experts < 1 || args.num_experts > kMaxGroupedExperts)
    return error("num_experts = " + std::to_string(args.num_experts) + " must be in [1, " +
                 std::to_string(kMaxGroupedExperts) + "]");
  if (args.total_rows < 0) return error("total_rows = " + std::to_string(args.total_rows) + " is negative");
  if (args.n <= 0) return error("n = " + std::to_string(args.n) + " must be >= 1");
  // The kernels address the stacked weights' rows (expert * n + row) with 32-bit ints.
  if (static_cast<long long>(args.num_experts) * args.n > std::numeric_limits<std::int32_t>::max())
    return error("num_experts * n = " + std::to_string(static_cast<long long>(args.num_experts) * args.n) +
                 " stacked weight rows do not fit in 32 bits");
  FP8LM_RETURN_IF_ERROR(check_k(fn, args.k));
  if (args.total_rows == 0) return Status::Ok();  // nothing to compute; pointers may be empty
  if (args.max_rows_per_expert < 1)
    return error("max_rows_per_expert = " + std::to_string(args.max_rows_per_expert) +
                 " must be >= 1 when total_rows > 0 (it sizes the grid)");
  FP8LM_RETURN_IF_ERROR(check_pointer(args.a, fn, "a (activations [total_rows, k])"));
  FP8LM_RETURN_IF_ERROR(check_pointer(args.a_scales, fn, "a_scales ([total_rows, ceil(k/128)])"));
  FP8LM_RETURN_IF_ERROR(check_pointer(args.b, fn, "b (stacked weights [num_experts * n, k])"));
  FP8LM_RETURN_IF_ERROR(
      check_pointer(args.b_scales, fn, "b_scales ([num_experts * ceil(n/128), ceil(k/128)])"));
  FP8LM_RETURN_IF_ERROR(check_pointer(args.out, fn, "out ([total_rows, n] bf16)"));
  if (args.offsets == nullptr) return error("offsets ([num_experts + 1] int32) is a null pointer");
  if (reinterpret_cast<std::uintptr_t>(args.offsets) % alignof(std::int32_t) != 0)
    return error("offsets is not 4-byte aligned");
  return Status::Ok();
}

Status validate_grouped_offsets(const Fp8GroupedGemmArgs& args, const std::int32_t* offsets) {
  constexpr const char* fn = "gemm_fp8_grouped";
  auto error = [&](const std::string& what) { return Status::Error(std::string(fn) + ": " + what); };
  if (offsets[0] != 0) return error("offsets[0] = " + std::to_string(offsets[0]) + " must be 0");
  for (int e = 0; e < args.num_experts; ++e) {
    const long long rows = static_cast<long long>(offsets[e + 1]) - offsets[e];
    if (rows < 0)
      return error("offsets decrease at expert " + std::to_string(e) + " (" + std::to_string(offsets[e]) + " -> " +
                   std::to_string(offsets[e + 1]) + ")");
    if (rows > args.max_rows_per_expert)
      return error("expert " + std::to_string(e) + " has " + std::to_string(rows) +
                   " rows, more than max_rows_per_expert = " + std::to_string(args.max_rows_per_expert));
  }
  if (offsets[args.num_experts] != args.total_rows)
    return error("offsets[num_experts] = " + std::to_string(offsets[args.num_experts]) + " must equal total_rows = " +
                 std::to_string(args.total_rows));
  return Status::Ok();
}

Status validate(const QuantizeArgs& args) {
  constexpr const char* fn = "quantize_per_token_group";
  if (args.m < 0) return Status::Error(std::string(fn) + ": m = " + std::to_string(args.m) + " is negative");
  FP8LM_RETURN_IF_ERROR(check_k(fn, args.k));
  if (args.m == 0) return Status::Ok();
  FP8LM_RETURN_IF_ERROR(check_pointer(args.in, fn, "in ([m, k] bf16)"));
  FP8LM_RETURN_IF_ERROR(check_pointer(args.out, fn, "out ([m, k] fp8)"));
  FP8LM_RETURN_IF_ERROR(check_pointer(args.scales, fn, "scales ([m, ceil(k/128)])"));
  if (args.rows != nullptr && args.in_rows < 1)
    return Status::Error(std::string(fn) + ": in_rows = " + std::to_string(args.in_rows) +
                         " must be >= 1 when rows (a gather) is given");
  return Status::Ok();
}

}  // namespace fp8lm
