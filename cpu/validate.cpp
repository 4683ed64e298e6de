// Argument checks shared by the GPU launchers and their CPU twins: a bad call gets a message that
// names the argument and what was expected, and nothing is launched or written.
#include <cstdint>
#include <string>

#include "fp8lm/gemm.h"
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

Status validate(const QuantizeArgs& args) {
  constexpr const char* fn = "quantize_per_token_group";
  if (args.m < 0) return Status::Error(std::string(fn) + ": m = " + std::to_string(args.m) + " is negative");
  FP8LM_RETURN_IF_ERROR(check_k(fn, args.k));
  if (args.m == 0) return Status::Ok();
  FP8LM_RETURN_IF_ERROR(check_pointer(args.in, fn, "in ([m, k] bf16)"));
  FP8LM_RETURN_IF_ERROR(check_pointer(args.out, fn, "out ([m, k] fp8)"));
  FP8LM_RETURN_IF_ERROR(check_pointer(args.scales, fn, "scales ([m, ceil(k/128)])"));
  return Status::Ok();
}

}  // namespace fp8lm
