// CPU twins of the quantizers: per-token-group (1x128) for activations, 128x128 blocks for weights.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "fp8lm/cpu.h"

namespace fp8lm::cpu {

void quantize_row(const float* values, int k, fp8_e4m3* out, float* scales) {
  for (int g = 0; g < ceil_div(k, kQuantGroup); ++g) {
    const int begin = g * kQuantGroup;
    const int end = std::min(k, begin + kQuantGroup);
    float amax = 0.0f;
    for (int i = begin; i < end; ++i) amax = std::fmax(amax, std::fabs(values[i]));
    const float scale = scale_from_amax(amax);
    scales[g] = scale;
    for (int i = begin; i < end; ++i) out[i] = fp8_encode(values[i] / scale);
  }
}

Status quantize_per_token_group(const QuantizeArgs& args) {
  FP8LM_RETURN_IF_ERROR(validate(args));
  const int groups = ceil_div(args.k, kQuantGroup);
  std::vector<float> row(args.k);
  for (int r = 0; r < args.m; ++r) {
    const bf16* in = args.in + static_cast<std::size_t>(r) * args.k;
    for (int i = 0; i < args.k; ++i) row[i] = bf16_to_float(in[i]);
    quantize_row(row.data(), args.k, args.out + static_cast<std::size_t>(r) * args.k,
                 args.scales + static_cast<std::size_t>(r) * groups);
  }
  return Status::Ok();
}

Status quantize_weight_blockwise(const float* w, int n, int k, fp8_e4m3* out, float* scales) {
  if (w == nullptr || out == nullptr || scales == nullptr)
    return Status::Error("quantize_weight_blockwise: null pointer argument");
  if (n <= 0 || k <= 0)
    return Status::Error("quantize_weight_blockwise: n = " + std::to_string(n) + ", k = " +
                         std::to_string(k) + " must both be >= 1");
  const int kb = ceil_div(k, kQuantGroup);
  for (int nb = 0; nb < ceil_div(n, kQuantGroup); ++nb) {
    const int r0 = nb * kQuantGroup, r1 = std::min(n, r0 + kQuantGroup);
    for (int b = 0; b < kb; ++b) {
      const int c0 = b * kQuantGroup, c1 = std::min(k, c0 + kQuantGroup);
      float amax = 0.0f;
      for (int r = r0; r < r1; ++r)
        for (int c = c0; c < c1; ++c) amax = std::fmax(amax, std::fabs(w[static_cast<std::size_t>(r) * k + c]));
      const float scale = scale_from_amax(amax);
      scales[static_cast<std::size_t>(nb) * kb + b] = scale;
      for (int r = r0; r < r1; ++r)
        for (int c = c0; c < c1; ++c) {
          const std::size_t i = static_cast<std::size_t>(r) * k + c;
          out[i] = fp8_encode(w[i] / scale);
        }
    }
  }
  return Status::Ok();
}

}  // namespace fp8lm::cpu
