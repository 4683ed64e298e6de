// The twin of decode_layers (fp8lm/decode_layers.h): the layered path's ops for one token, layer by
// layer, on the CPU twins; and the op's argument checks, shared with the GPU launcher.
#include "fp8lm/decode_layers.h"

#include <algorithm>
#include <string>
#include <vector>

#include "arg_checks.h"
#include "fp8lm/cpu.h"
#include "fp8lm/layer_ops.h"

namespace fp8lm {

using namespace arg_checks;

bool decode_layers_supported(int hidden, int inter, int q_heads, int kv_heads, int head_dim) {
  return head_dim == 128 && hidden > 0 && inter > 0 && hidden % 16 == 0 && inter % 16 == 0 && q_heads > 0 &&
         kv_heads > 0 && kv_heads <= kDecodeLayersMaxKvHeads && q_heads % kv_heads == 0 &&
         q_heads / kv_heads <= kDecodeLayersMaxGroup;
}

Status validate(const DecodeLayersArgs& a) {
  constexpr const char* fn = "decode_layers";
  FP8LM_RETURN_IF_ERROR(positive(a.num_layers, fn, "num_layers"));
  FP8LM_RETURN_IF_ERROR(not_null(a.layers, fn, "layers"));
  FP8LM_RETURN_IF_ERROR(not_null(a.x, fn, "x"));
  FP8LM_RETURN_IF_ERROR(positive(a.hidden, fn, "hidden"));
  FP8LM_RETURN_IF_ERROR(positive(a.inter, fn, "inter"));
  FP8LM_RETURN_IF_ERROR(need(a.hidden % 16 == 0 && a.inter % 16 == 0, fn,
                             "hidden = " + str(a.hidden) + " and inter = " + str(a.inter) +
                                 " must be multiples of 16 (the quantizer's k)"));
  FP8LM_RETURN_IF_ERROR(positive(a.q_heads, fn, "q_heads"));
  FP8LM_RETURN_IF_ERROR(positive(a.kv_heads, fn, "kv_heads"));
  FP8LM_RETURN_IF_ERROR(need(a.q_heads % a.kv_heads == 0, fn,
                             "q_heads = " + str(a.q_heads) + " must be a multiple of kv_heads = " + str(a.kv_heads)));
  FP8LM_RETURN_IF_ERROR(need(a.head_dim == 128, fn, "head_dim = " + str(a.head_dim) + " must be 128"));
  FP8LM_RETURN_IF_ERROR(need(a.eps >= 0.0f, fn, "eps must be >= 0"));
  FP8LM_RETURN_IF_ERROR(need(a.rope_theta > 0.0f, fn, "rope_theta must be > 0"));
  FP8LM_RETURN_IF_ERROR(need(a.scale > 0.0f, fn, "scale must be > 0"));
  FP8LM_RETURN_IF_ERROR(positive(a.page_size, fn, "page_size"));
  FP8LM_RETURN_IF_ERROR(not_null(a.block_table, fn, "block_table"));
  FP8LM_RETURN_IF_ERROR(non_negative(a.pos, fn, "pos"));
  return need(a.pos < a.cache_capacity, fn,
              "pos = " + str(a.pos) + " must be below cache_capacity = " + str(a.cache_capacity) +
                  (a.pos_ptr != nullptr ? " (pos bounds the position read from pos_ptr)" : ""));
}

namespace cpu {

Status decode_layers(const DecodeLayersArgs& a) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  const int pos = a.pos_ptr != nullptr ? *a.pos_ptr : a.pos;
  if (pos < 0 || pos > a.pos)
    return Status::Error("decode_layers: the position " + std::to_string(pos) + " read from pos_ptr is outside [0, " +
                         std::to_string(a.pos) + "]");
  const int hidden = a.hidden, q_width = a.q_heads * a.head_dim;
  const int qkv_width = q_width + 2 * a.kv_heads * a.head_dim;
  const int widest = std::max({hidden, q_width, a.inter});
  std::vector<fp8_e4m3> q8(widest);
  std::vector<float> q8_scales(ceil_div(widest, kQuantGroup));
  std::vector<bf16> qkv(qkv_width), attn(q_width), out(hidden), gate_up(2 * static_cast<std::size_t>(a.inter));
  bf16* x = a.x;
  for (int i = 0; i < a.num_layers; ++i) {
    const DecodeLayerWeights& l = a.layers[i];
    FP8LM_RETURN_IF_ERROR(
        rmsnorm_quantize({x, nullptr, l.input_layernorm, nullptr, q8.data(), q8_scales.data(), 1, hidden, a.eps}));
    FP8LM_RETURN_IF_ERROR(gemm_fp8_blockwise(
        {q8.data(), q8_scales.data(), l.qkv.weight, l.qkv.scales, qkv.data(), 1, qkv_width, hidden}));
    FP8LM_RETURN_IF_ERROR(qk_norm_rope({qkv.data(), l.q_norm, l.k_norm, l.k_cache, l.v_cache, a.block_table, a.page_size,
                                        1, pos, a.cache_capacity, a.q_heads, a.kv_heads, a.head_dim, a.eps,
                                        a.rope_theta}));
    AttentionArgs attention_args{qkv.data(), l.k_cache, l.v_cache, a.block_table, a.page_size, attn.data(), 1, pos,
                                 a.cache_capacity, a.q_heads, a.kv_heads, a.head_dim, a.scale};
    attention_args.q8 = q8.data(), attention_args.q8_scales = q8_scales.data();
    FP8LM_RETURN_IF_ERROR(attention(attention_args));
    FP8LM_RETURN_IF_ERROR(
        gemm_fp8_blockwise({q8.data(), q8_scales.data(), l.o.weight, l.o.scales, out.data(), 1, hidden, q_width}));
    FP8LM_RETURN_IF_ERROR(rmsnorm_quantize(
        {x, out.data(), l.post_attention_layernorm, nullptr, q8.data(), q8_scales.data(), 1, hidden, a.eps}));
    FP8LM_RETURN_IF_ERROR(gemm_fp8_blockwise({q8.data(), q8_scales.data(), l.gate_up.weight, l.gate_up.scales,
                                              gate_up.data(), 1, 2 * a.inter, hidden}));
    FP8LM_RETURN_IF_ERROR(silu_mul_quantize({gate_up.data(), q8.data(), q8_scales.data(), 1, a.inter}));
    FP8LM_RETURN_IF_ERROR(
        gemm_fp8_blockwise({q8.data(), q8_scales.data(), l.down.weight, l.down.scales, out.data(), 1, hidden, a.inter}));
    FP8LM_RETURN_IF_ERROR(add({x, out.data(), static_cast<std::size_t>(hidden)}));
  }
  return Status::Ok();
}

}  // namespace cpu

}  // namespace fp8lm
