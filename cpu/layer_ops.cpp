// CPU twins of the layer ops (fp8lm/layer_ops.h): the reference the kernels are tested against and
// the CPU backend's implementation. Elementwise ops, rmsnorm and qk_norm_rope reproduce the kernels
// bit for bit (same rounding steps, same summation order), and so do the fused ops, built from the
// same per-row pieces as the ops they fuse (the quantizer's through cpu::quantize_row); attention
// and lm_head differ from the GPU only in summation order. Attention and lm_head run on all
// hardware threads.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "fp8lm/cpu.h"
#include "fp8lm/layer_math.h"
#include "fp8lm/layer_ops.h"
#include "fp8lm/mlp_ops.h"
#include "fp8lm/parallel.h"

namespace fp8lm::cpu {

namespace {

float f(bf16 v) { return bf16_to_float(v); }


// The kernels' sum of squares: element i adds into partial (i / chunk) % 32 (lane of a warp that
// reads `chunk` elements per load), then an xor butterfly over the 32 partials.
float warp_order_sum_squares(const bf16* x, int dim, int chunk) {
  std::array<float, 32> p{};
  for (int i = 0; i < dim; ++i) {
    const float v = f(x[i]);
    p[(i / chunk) % 32] += v * v;  // v * v is exact in fp32 (8-bit significands)
  }
  for (int mask = 16; mask > 0; mask >>= 1) {
    std::array<float, 32> q;
    for (int l = 0; l < 32; ++l) q[l] = p[l] + p[l ^ mask];
    p = q;
  }
  return p[0];
}

// bf16(bf16(silu(gate)) * up) as a float.
float silu_mul_value(bf16 gate, bf16 up) { return round_bf16(round_bf16(math::silu_f32(f(gate))) * f(up)); }

// out[i] = bf16(w[i] * bf16(x[i] * r)) as floats.
void normalize(const bf16* x, const bf16* w, int dim, float r, float* y) {
  for (int i = 0; i < dim; ++i) y[i] = round_bf16(f(w[i]) * round_bf16(f(x[i]) * r));
}

constexpr int kRmsNormChunk = 8;  // 16-byte loads of bf16
constexpr int kQkNormChunk = 4;   // 8-byte loads: one warp covers a 128-wide head

// The start position an op runs at: *start_pos_ptr when set (a recorded op replayed at changing
// positions), which must lie within the bound start_pos that validate() checked.
Status resolve_start_pos(int start_pos, const int* start_pos_ptr, const char* fn, int* out) {
  *out = start_pos;
  if (start_pos_ptr == nullptr) return Status::Ok();
  if (*start_pos_ptr < 0 || *start_pos_ptr > start_pos)
    return Status::Error(std::string(fn) + ": *start_pos_ptr = " + std::to_string(*start_pos_ptr) +
                         " is outside [0, start_pos = " + std::to_string(start_pos) + "]");
  *out = *start_pos_ptr;
  return Status::Ok();
}

}  // namespace

Status embed(const EmbedArgs& a) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  for (int t = 0; t < a.n; ++t) {
    const std::int32_t id = a.tokens[t];
    if (id < 0 || id >= a.vocab)
      return Status::Error("embed: token id " + std::to_string(id) + " at position " + std::to_string(t) +
                           " is outside [0, vocab = " + std::to_string(a.vocab) + ")");
  }
  for (int t = 0; t < a.n; ++t)
    std::copy_n(a.table + static_cast<std::size_t>(a.tokens[t]) * a.hidden, a.hidden,
                a.out + static_cast<std::size_t>(t) * a.hidden);
  return Status::Ok();
}

Status rmsnorm(const RmsNormArgs& a) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  std::vector<float> y(a.dim);
  for (int row = 0; row < a.rows; ++row) {
    const bf16* x = a.x + static_cast<std::size_t>(row) * a.x_stride;
    const float r = math::rms_rsqrt(warp_order_sum_squares(x, a.dim, kRmsNormChunk), a.dim, a.eps);
    normalize(x, a.weight, a.dim, r, y.data());
    bf16* out = a.out + static_cast<std::size_t>(row) * a.out_stride;
    for (int i = 0; i < a.dim; ++i) out[i] = float_to_bf16(y[i]);
  }
  return Status::Ok();
}

Status rmsnorm_quantize(const RmsNormQuantizeArgs& a) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  const int groups = ceil_div(a.dim, kQuantGroup);
  std::vector<float> y(a.dim);
  for (int row = 0; row < a.rows; ++row) {
    const std::size_t at = static_cast<std::size_t>(row) * a.dim;
    bf16* x = a.x + at;
    if (a.residual != nullptr)
      for (int i = 0; i < a.dim; ++i) x[i] = float_to_bf16(f(x[i]) + f(a.residual[at + i]));
    const float r = math::rms_rsqrt(warp_order_sum_squares(x, a.dim, kRmsNormChunk), a.dim, a.eps);
    normalize(x, a.weight, a.dim, r, y.data());  // bf16 values: what rmsnorm would store
    if (a.out != nullptr)
      for (int i = 0; i < a.dim; ++i) a.out[at + i] = float_to_bf16(y[i]);
    if (a.q8 != nullptr) quantize_row(y.data(), a.dim, a.q8 + at, a.scales + static_cast<std::size_t>(row) * groups);
  }
  return Status::Ok();
}

Status qk_norm_rope(const QkNormRopeArgs& a) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  int start_pos = 0;
  FP8LM_RETURN_IF_ERROR(resolve_start_pos(a.start_pos, a.start_pos_ptr, "qk_norm_rope", &start_pos));
  const int hd = a.head_dim, half = hd / 2;
  const std::size_t row = static_cast<std::size_t>(a.q_heads + 2 * a.kv_heads) * hd;
  const std::size_t cache_row = static_cast<std::size_t>(a.kv_heads) * hd;
  std::vector<float> cos_b(half), sin_b(half), y(hd);
  for (int t = 0; t < a.n; ++t) {
    const int pos = start_pos + t;
    const std::size_t cache_at = paged_row(a.block_table, a.page_size, pos) * cache_row;
    for (int i = 0; i < half; ++i) {
      float c, s;
      math::rope_cos_sin(pos, i, hd, a.rope_theta, &c, &s);
      cos_b[i] = round_bf16(c), sin_b[i] = round_bf16(s);
    }
    bf16* qkv = a.qkv + t * row;
    for (int h = 0; h < a.q_heads + a.kv_heads; ++h) {
      bf16* x = qkv + static_cast<std::size_t>(h) * hd;
      const bf16* w = h < a.q_heads ? a.q_norm : a.k_norm;
      const float r = math::rms_rsqrt(warp_order_sum_squares(x, hd, kQkNormChunk), hd, a.eps);
      normalize(x, w, hd, r, y.data());
      for (int i = 0; i < hd; ++i) {
        const int j = i % half;
        const float rotated = i < half ? -y[i + half] : y[i - half];  // rotate_half
        x[i] = float_to_bf16(round_bf16(y[i] * cos_b[j]) + round_bf16(rotated * sin_b[j]));
      }
      if (h >= a.q_heads) std::copy_n(x, hd, a.k_cache + cache_at + static_cast<std::size_t>(h - a.q_heads) * hd);
    }
    std::copy_n(qkv + static_cast<std::size_t>(a.q_heads + a.kv_heads) * hd, cache_row, a.v_cache + cache_at);
  }
  return Status::Ok();
}

Status attention(const AttentionArgs& a) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  if (a.rope != nullptr) FP8LM_RETURN_IF_ERROR(qk_norm_rope(*a.rope));
  int start_pos = 0;
  FP8LM_RETURN_IF_ERROR(resolve_start_pos(a.start_pos, a.start_pos_ptr, "attention", &start_pos));
  const int hd = a.head_dim, group = a.q_heads / a.kv_heads;
  const std::size_t qkv_row = static_cast<std::size_t>(a.q_heads + 2 * a.kv_heads) * hd;
  const std::size_t cache_row = static_cast<std::size_t>(a.kv_heads) * hd;
  parallel_ranges(static_cast<long long>(a.n) * a.q_heads, [&](long long begin, long long end) {
    std::vector<float> q(hd), k(hd), acc(hd), scores;
    std::vector<std::size_t> rows;  // element offset of key j's head in the K and V pools
    for (long long item = begin; item < end; ++item) {
      const int t = static_cast<int>(item / a.q_heads), h = static_cast<int>(item % a.q_heads);
      const int kv = h / group, keys = start_pos + t + 1;
      const bf16* qp = a.qkv + t * qkv_row + static_cast<std::size_t>(h) * hd;
      for (int d = 0; d < hd; ++d) q[d] = f(qp[d]);
      scores.resize(keys);
      rows.resize(keys);
      float m = -std::numeric_limits<float>::infinity();
      for (int j = 0; j < keys; ++j) {
        rows[j] = paged_row(a.block_table, a.page_size, j) * cache_row + static_cast<std::size_t>(kv) * hd;
        const bf16* kp = a.k_cache + rows[j];
        float s = 0.0f;
        for (int d = 0; d < hd; ++d) s += q[d] * f(kp[d]);
        scores[j] = s * a.scale;
        m = std::max(m, scores[j]);
      }
      float l = 0.0f;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int j = 0; j < keys; ++j) {
        const float p = std::exp(scores[j] - m);
        l += p;
        const bf16* vp = a.v_cache + rows[j];
        for (int d = 0; d < hd; ++d) acc[d] += p * f(vp[d]);
      }
      bf16* out = a.out + static_cast<std::size_t>(t) * a.q_heads * hd + static_cast<std::size_t>(h) * hd;
      for (int d = 0; d < hd; ++d) out[d] = float_to_bf16(acc[d] / l);
    }
  });
  if (a.q8 == nullptr) return Status::Ok();
  return quantize_per_token_group({a.out, a.q8, a.q8_scales, a.n, a.q_heads * hd});
}

Status silu_mul(const SiluMulArgs& a) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  for (int t = 0; t < a.n; ++t) {
    const bf16* gate = a.gate_up + static_cast<std::size_t>(t) * 2 * a.inter;
    const bf16* up = gate + a.inter;
    bf16* out = a.out + static_cast<std::size_t>(t) * a.inter;
    for (int i = 0; i < a.inter; ++i) out[i] = float_to_bf16(silu_mul_value(gate[i], up[i]));
  }
  return Status::Ok();
}

Status gate_up_swiglu(const GateUpSwigluArgs& a) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  FP8LM_RETURN_IF_ERROR(gemm_fp8_blockwise(a.gemm));
  return silu_mul_quantize(a.act);
}

Status grouped_gate_up_swiglu(const GroupedGateUpSwigluArgs& a) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  FP8LM_RETURN_IF_ERROR(gemm_fp8_grouped(a.gemm));
  return silu_mul_quantize(a.act);
}

Status silu_mul_quantize(const SiluMulQuantizeArgs& a) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  const int groups = ceil_div(a.inter, kQuantGroup);
  std::vector<float> act(a.inter);
  for (int t = 0; t < a.n; ++t) {
    const bf16* gate = a.gate_up + static_cast<std::size_t>(t) * 2 * a.inter;
    const bf16* up = gate + a.inter;
    for (int i = 0; i < a.inter; ++i) act[i] = silu_mul_value(gate[i], up[i]);
    quantize_row(act.data(), a.inter, a.q8 + static_cast<std::size_t>(t) * a.inter,
                 a.scales + static_cast<std::size_t>(t) * groups);
  }
  return Status::Ok();
}

Status add(const AddArgs& a) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  for (std::size_t i = 0; i < a.count; ++i) a.x[i] = float_to_bf16(f(a.x[i]) + f(a.y[i]));
  return Status::Ok();
}

Status lm_head(const LmHeadArgs& a) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  const int hidden = a.hidden;
  std::vector<float> x(static_cast<std::size_t>(a.n) * hidden);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = f(a.x[i]);
  parallel_ranges(a.vocab, [&](long long begin, long long end) {
    constexpr int kLanes = 8;  // independent partial sums: vectorizable without -ffast-math
    std::vector<float> w(hidden);
    for (long long v = begin; v < end; ++v) {
      const bf16* wr = a.weight + static_cast<std::size_t>(v) * hidden;
      for (int i = 0; i < hidden; ++i) w[i] = f(wr[i]);
      for (int t = 0; t < a.n; ++t) {
        const float* xr = &x[static_cast<std::size_t>(t) * hidden];
        std::array<float, kLanes> acc{};
        int i = 0;
        for (; i + kLanes <= hidden; i += kLanes)
          for (int l = 0; l < kLanes; ++l) acc[l] += xr[i + l] * w[i + l];
        float sum = 0.0f;
        for (; i < hidden; ++i) sum += xr[i] * w[i];
        for (int l = 0; l < kLanes; ++l) sum += acc[l];
        a.logits[static_cast<std::size_t>(t) * a.vocab + v] = sum;
      }
    }
  });
  return Status::Ok();
}

Status greedy_token(const GreedyTokenArgs& a) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  int token = -1;
  for (int v = 0; v < a.vocab; ++v)  // strict >: the first of equal maxima; NaN never compares larger
    if (!std::isnan(a.logits[v]) && (token < 0 || a.logits[v] > a.logits[token])) token = v;
  const int position = a.step[1];
  a.step[0] = token < 0 ? 0 : token;
  a.step[1] = position + 1;
  if (a.host_tokens != nullptr) a.host_tokens[position % a.ring] = a.step[0];
  return Status::Ok();
}

}  // namespace fp8lm::cpu
