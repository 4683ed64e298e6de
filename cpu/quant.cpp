// CPU twins of the quantizers: per-token-group (1x128) for activations, 128x128 blocks for weights.
#include <algorithm>
#include <bit>
#include <cmath>
#include <string>
#include <vector>

#include "arg_checks.h"
#include "fp8lm/cpu.h"

namespace fp8lm::cpu {

namespace {

// max(amax, |v[0]|, ..., |v[n-1]|) skipping NaNs, as a chain of std::fmax would give it (a maximum
// does not depend on the order), computed on bit patterns: with the sign bit cleared they order
// like the values (NaNs above +inf), and int32 compares vectorise where libm's fmaxf does not
// (uint32 ones do not either, on the baseline x86-64 instruction set).
float abs_max(const float* v, int n, float amax) {
  constexpr std::int32_t kInfBits = std::bit_cast<std::int32_t>(INFINITY);
  std::int32_t m = std::bit_cast<std::int32_t>(amax);
  for (int i = 0; i < n; ++i) {
    const std::int32_t a = std::bit_cast<std::int32_t>(v[i]) & 0x7FFFFFFF;
    m = std::max(m, a > kInfBits ? 0 : a);
  }
  return std::bit_cast<float>(m);
}

}  // namespace

void quantize_row(const float* values, int k, fp8_e4m3* out, float* scales) {
  for (int g = 0; g < ceil_div(k, kQuantGroup); ++g) {
    const int begin = g * kQuantGroup;
    const int end = std::min(k, begin + kQuantGroup);
    const float scale = scale_from_amax(abs_max(values + begin, end - begin, 0.0f));
    scales[g] = scale;
    for (int i = begin; i < end; ++i) out[i] = fp8_encode(values[i] / scale);
  }
}

Status quantize_per_token_group(const QuantizeArgs& args) {
  FP8LM_RETURN_IF_ERROR(validate(args));
  const int groups = ceil_div(args.k, kQuantGroup);
  if (args.rows != nullptr)
    for (int r = 0; r < args.m; ++r)
      if (args.rows[r] < 0 || args.rows[r] >= args.in_rows)  // the message only when it fails (a row per pair)
        return arg_checks::need(false, "quantize_per_token_group",
                                "rows[" + arg_checks::str(r) + "] = " + arg_checks::str(args.rows[r]) +
                                    " is outside [0, " + arg_checks::str(args.in_rows) + ")");
  std::vector<float> row(args.k);
  for (int r = 0; r < args.m; ++r) {
    const bf16* in = args.in + static_cast<std::size_t>(args.rows != nullptr ? args.rows[r] : r) * args.k;
    for (int i = 0; i < args.k; ++i) row[i] = bf16_to_float(in[i]);
    quantize_row(row.data(), args.k, args.out + static_cast<std::size_t>(r) * args.k,
                 args.scales + static_cast<std::size_t>(r) * groups);
  }
  return Status::Ok();
}

float quantize_weight_block(const float* w, int rows, int cols, std::size_t ld, fp8_e4m3* out, std::size_t out_ld) {
  float amax = 0.0f;
  for (int r = 0; r < rows; ++r) amax = abs_max(w + r * ld, cols, amax);
  const float scale = scale_from_amax(amax);
  for (int r = 0; r < rows; ++r) {
    const float* row = w + r * ld;
    fp8_e4m3* dst = out + r * out_ld;
    for (int c = 0; c < cols; ++c) dst[c] = fp8_encode(row[c] / scale);
  }
  return scale;
}

Status quantize_weight_blockwise(const float* w, int n, int k, fp8_e4m3* out, float* scales) {
  if (w == nullptr || out == nullptr || scales == nullptr)
    return Status::Error("quantize_weight_blockwise: null pointer argument");
  if (n <= 0 || k <= 0)
    return Status::Error("quantize_weight_blockwise: n = " + std::to_string(n) + ", k = " +
                         std::to_string(k) + " must both be >= 1");
  const int kb = ceil_div(k, kQuantGroup);
  for (int nb = 0; nb < ceil_div(n, kQuantGroup); ++nb) {
    const int r0 = nb * kQuantGroup, rows = std::min(n - r0, kQuantGroup);
    for (int b = 0; b < kb; ++b) {
      const int c0 = b * kQuantGroup;
      const std::size_t first = static_cast<std::size_t>(r0) * k + c0;
      scales[static_cast<std::size_t>(nb) * kb + b] =
          quantize_weight_block(w + first, rows, std::min(k - c0, kQuantGroup), k, out + first, k);
    }
  }
  return Status::Ok();
}

}  // namespace fp8lm::cpu
