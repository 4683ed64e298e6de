// Argument checks of the layer ops, shared by the GPU launchers and the CPU twins: a bad call gets a
// message naming the op, the argument and what was expected, and nothing is launched or written.
#include <cstdint>
#include <string>

#include "arg_checks.h"
#include "fp8lm/grouped_gemm.h"
#include "fp8lm/layer_ops.h"
#include "fp8lm/mlp_ops.h"

namespace fp8lm {

namespace {

using namespace arg_checks;

// The quantizer's rule (fp8lm/quant.h): rows are read in 16-byte vectors.
Status multiple_of_16(long long v, const char* fn, const char* name) {
  return need(v % 16 == 0, fn, std::string(name) + " = " + str(v) + " must be a multiple of 16 (as the quantizer's k)");
}

Status heads(int q_heads, int kv_heads, int head_dim, const char* fn) {
  FP8LM_RETURN_IF_ERROR(positive(q_heads, fn, "q_heads"));
  FP8LM_RETURN_IF_ERROR(positive(kv_heads, fn, "kv_heads"));
  FP8LM_RETURN_IF_ERROR(need(q_heads % kv_heads == 0, fn,
                             "q_heads = " + str(q_heads) + " must be a multiple of kv_heads = " + str(kv_heads)));
  FP8LM_RETURN_IF_ERROR(positive(head_dim, fn, "head_dim"));
  return need(head_dim % 2 == 0, fn, "head_dim = " + str(head_dim) + " must be even (RoPE rotates halves)");
}

// The sequence's rows start_pos .. start_pos + n - 1 must be mapped by its block table.
Status paged_cache(const std::int32_t* block_table, int page_size, int start_pos, int n, int cache_capacity,
                   const char* fn) {
  FP8LM_RETURN_IF_ERROR(positive(page_size, fn, "page_size"));
  FP8LM_RETURN_IF_ERROR(non_negative(cache_capacity, fn, "cache_capacity"));
  FP8LM_RETURN_IF_ERROR(need(static_cast<long long>(start_pos) + n <= cache_capacity, fn,
                             "start_pos + n = " + str(static_cast<long long>(start_pos) + n) +
                                 " exceeds cache_capacity = " + str(cache_capacity)));
  if (n == 0) return Status::Ok();
  return not_null(block_table, fn, "block_table");
}

}  // namespace

Status validate(const EmbedArgs& a) {
  constexpr const char* fn = "embed";
  FP8LM_RETURN_IF_ERROR(non_negative(a.n, fn, "n"));
  FP8LM_RETURN_IF_ERROR(positive(a.vocab, fn, "vocab"));
  FP8LM_RETURN_IF_ERROR(positive(a.hidden, fn, "hidden"));
  if (a.n == 0) return Status::Ok();
  FP8LM_RETURN_IF_ERROR(not_null(a.tokens, fn, "tokens"));
  FP8LM_RETURN_IF_ERROR(not_null(a.table, fn, "table"));
  return not_null(a.out, fn, "out");
}

Status validate(const RmsNormArgs& a) {
  constexpr const char* fn = "rmsnorm";
  FP8LM_RETURN_IF_ERROR(non_negative(a.rows, fn, "rows"));
  FP8LM_RETURN_IF_ERROR(positive(a.dim, fn, "dim"));
  FP8LM_RETURN_IF_ERROR(need(a.x_stride >= a.dim, fn,
                             "x_stride = " + str(a.x_stride) + " must be >= dim = " + str(a.dim)));
  FP8LM_RETURN_IF_ERROR(need(a.out_stride >= a.dim, fn,
                             "out_stride = " + str(a.out_stride) + " must be >= dim = " + str(a.dim)));
  FP8LM_RETURN_IF_ERROR(need(a.eps >= 0.0f, fn, "eps must be >= 0"));
  if (a.rows == 0) return Status::Ok();
  FP8LM_RETURN_IF_ERROR(not_null(a.x, fn, "x"));
  FP8LM_RETURN_IF_ERROR(not_null(a.weight, fn, "weight"));
  FP8LM_RETURN_IF_ERROR(not_null(a.out, fn, "out"));
  return need(a.out != a.x || a.out_stride == a.x_stride, fn, "in place (out == x) needs out_stride == x_stride");
}

Status validate(const QkNormRopeArgs& a) {
  constexpr const char* fn = "qk_norm_rope";
  FP8LM_RETURN_IF_ERROR(non_negative(a.n, fn, "n"));
  FP8LM_RETURN_IF_ERROR(non_negative(a.start_pos, fn, "start_pos"));
  FP8LM_RETURN_IF_ERROR(heads(a.q_heads, a.kv_heads, a.head_dim, fn));
  FP8LM_RETURN_IF_ERROR(paged_cache(a.block_table, a.page_size, a.start_pos, a.n, a.cache_capacity, fn));
  FP8LM_RETURN_IF_ERROR(need(a.eps >= 0.0f, fn, "eps must be >= 0"));
  FP8LM_RETURN_IF_ERROR(need(a.rope_theta > 0.0f, fn, "rope_theta must be > 0"));
  if (a.n == 0) return Status::Ok();
  FP8LM_RETURN_IF_ERROR(not_null(a.qkv, fn, "qkv"));
  FP8LM_RETURN_IF_ERROR(not_null(a.q_norm, fn, "q_norm"));
  FP8LM_RETURN_IF_ERROR(not_null(a.k_norm, fn, "k_norm"));
  FP8LM_RETURN_IF_ERROR(not_null(a.k_cache, fn, "k_cache"));
  return not_null(a.v_cache, fn, "v_cache");
}

Status validate(const AttentionArgs& a) {
  constexpr const char* fn = "attention";
  FP8LM_RETURN_IF_ERROR(non_negative(a.n, fn, "n"));
  FP8LM_RETURN_IF_ERROR(non_negative(a.start_pos, fn, "start_pos"));
  FP8LM_RETURN_IF_ERROR(heads(a.q_heads, a.kv_heads, a.head_dim, fn));
  FP8LM_RETURN_IF_ERROR(paged_cache(a.block_table, a.page_size, a.start_pos, a.n, a.cache_capacity, fn));
  FP8LM_RETURN_IF_ERROR(need(a.scale > 0.0f, fn, "scale must be > 0"));
  if (a.n == 0) return Status::Ok();
  FP8LM_RETURN_IF_ERROR(not_null(a.qkv, fn, "qkv"));
  FP8LM_RETURN_IF_ERROR(not_null(a.k_cache, fn, "k_cache"));
  FP8LM_RETURN_IF_ERROR(not_null(a.v_cache, fn, "v_cache"));
  FP8LM_RETURN_IF_ERROR(need((a.q8 == nullptr) == (a.q8_scales == nullptr), fn, "q8 and q8_scales go together"));
  FP8LM_RETURN_IF_ERROR(need(a.q8 == nullptr || a.head_dim == kQuantGroup, fn,
                             "the quantized output (q8) needs head_dim = 128 (one quantization group per head)"));
  if (a.rope != nullptr) {
    const QkNormRopeArgs& r = *a.rope;
    FP8LM_RETURN_IF_ERROR(need(a.n == 1, fn, "the fused qk_norm_rope (rope) is for one token (decode), n = 1"));
    FP8LM_RETURN_IF_ERROR(validate(r));
    const bool same = r.qkv == a.qkv && r.k_cache == a.k_cache && r.v_cache == a.v_cache &&
                      r.block_table == a.block_table && r.page_size == a.page_size && r.n == a.n &&
                      r.start_pos == a.start_pos && r.start_pos_ptr == a.start_pos_ptr &&
                      r.cache_capacity == a.cache_capacity && r.q_heads == a.q_heads && r.kv_heads == a.kv_heads &&
                      r.head_dim == a.head_dim;
    FP8LM_RETURN_IF_ERROR(need(same, fn,
                               "rope must describe the same token: qkv, caches, block table, page size, n, "
                               "positions and heads equal to the attention's"));
  }
  return not_null(a.out, fn, "out");
}

Status validate(const SiluMulArgs& a) {
  constexpr const char* fn = "silu_mul";
  FP8LM_RETURN_IF_ERROR(non_negative(a.n, fn, "n"));
  FP8LM_RETURN_IF_ERROR(positive(a.inter, fn, "inter"));
  if (a.n == 0) return Status::Ok();
  FP8LM_RETURN_IF_ERROR(not_null(a.gate_up, fn, "gate_up"));
  return not_null(a.out, fn, "out");
}

Status validate(const AddArgs& a) {
  constexpr const char* fn = "add";
  if (a.count == 0) return Status::Ok();
  FP8LM_RETURN_IF_ERROR(not_null(a.x, fn, "x"));
  return not_null(a.y, fn, "y");
}

Status validate(const RmsNormQuantizeArgs& a) {
  constexpr const char* fn = "rmsnorm_quantize";
  FP8LM_RETURN_IF_ERROR(non_negative(a.rows, fn, "rows"));
  FP8LM_RETURN_IF_ERROR(positive(a.dim, fn, "dim"));
  FP8LM_RETURN_IF_ERROR(multiple_of_16(a.dim, fn, "dim"));
  FP8LM_RETURN_IF_ERROR(need(a.eps >= 0.0f, fn, "eps must be >= 0"));
  FP8LM_RETURN_IF_ERROR(need((a.q8 == nullptr) == (a.scales == nullptr), fn,
                             "q8 and scales must both be set (quantize) or both be null"));
  FP8LM_RETURN_IF_ERROR(need(a.q8 != nullptr || a.out != nullptr, fn, "no output: set q8 and scales, out, or both"));
  if (a.rows == 0) return Status::Ok();
  FP8LM_RETURN_IF_ERROR(not_null(a.x, fn, "x"));
  FP8LM_RETURN_IF_ERROR(not_null(a.weight, fn, "weight"));
  return need(a.out == nullptr || (a.out != a.x && a.out != a.residual), fn, "out must not alias x or residual");
}

Status validate(const SiluMulQuantizeArgs& a) {
  constexpr const char* fn = "silu_mul_quantize";
  FP8LM_RETURN_IF_ERROR(non_negative(a.n, fn, "n"));
  FP8LM_RETURN_IF_ERROR(positive(a.inter, fn, "inter"));
  FP8LM_RETURN_IF_ERROR(multiple_of_16(a.inter, fn, "inter"));
  if (a.n == 0) return Status::Ok();
  FP8LM_RETURN_IF_ERROR(not_null(a.gate_up, fn, "gate_up"));
  FP8LM_RETURN_IF_ERROR(not_null(a.q8, fn, "q8"));
  return not_null(a.scales, fn, "scales");
}

namespace {
// Shared by the dense and grouped forms: the activation reads the GEMM's output (rows = the GEMM's
// m or total_rows, named by rows_name) and writes apart from the GEMM's input.
template <class Gemm>
Status validate_gate_up_swiglu(const Gemm& gemm, int rows, const char* rows_name, const SiluMulQuantizeArgs& act,
                               const char* fn) {
  FP8LM_RETURN_IF_ERROR(validate(gemm));
  FP8LM_RETURN_IF_ERROR(validate(act));
  FP8LM_RETURN_IF_ERROR(need(act.gate_up == gemm.out && act.n == rows && 2 * static_cast<long long>(act.inter) == gemm.n,
                             fn, std::string("the activation must read the GEMM's output: act.gate_up == gemm.out, ") +
                                     "act.n == gemm." + rows_name + ", 2 * act.inter == gemm.n"));
  return need(static_cast<const void*>(act.q8) != gemm.a && static_cast<const void*>(act.scales) != gemm.a_scales, fn,
              "act.q8 and act.scales must not be the GEMM's input (gemm.a, gemm.a_scales)");
}
}  // namespace

Status validate(const GateUpSwigluArgs& a) {
  return validate_gate_up_swiglu(a.gemm, a.gemm.m, "m", a.act, "gate_up_swiglu");
}

Status validate(const GroupedGateUpSwigluArgs& a) {
  return validate_gate_up_swiglu(a.gemm, a.gemm.total_rows, "total_rows", a.act, "grouped_gate_up_swiglu");
}

Status validate(const LmHeadArgs& a) {
  constexpr const char* fn = "lm_head";
  FP8LM_RETURN_IF_ERROR(non_negative(a.n, fn, "n"));
  FP8LM_RETURN_IF_ERROR(positive(a.hidden, fn, "hidden"));
  FP8LM_RETURN_IF_ERROR(positive(a.vocab, fn, "vocab"));
  if (a.n == 0) return Status::Ok();
  FP8LM_RETURN_IF_ERROR(not_null(a.x, fn, "x"));
  FP8LM_RETURN_IF_ERROR(not_null(a.weight, fn, "weight"));
  return not_null(a.logits, fn, "logits");
}

Status validate(const GreedyTokenArgs& a) {
  constexpr const char* fn = "greedy_token";
  FP8LM_RETURN_IF_ERROR(positive(a.vocab, fn, "vocab"));
  FP8LM_RETURN_IF_ERROR(not_null(a.logits, fn, "logits"));
  FP8LM_RETURN_IF_ERROR(not_null(a.step, fn, "step"));
  if (a.host_tokens != nullptr) FP8LM_RETURN_IF_ERROR(positive(a.ring, fn, "ring"));
  return Status::Ok();
}

}  // namespace fp8lm
