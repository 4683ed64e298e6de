// CPU twins of the FP8 blockwise GEMM.
//  - gemm_fp8_blockwise: the CPU backend. fp32 partial sums over each 128-k block, promoted into
//    an fp32 accumulator with a_scale * b_scale, like the GPU kernels; threads split n.
//  - gemm_fp8_blockwise_oracle: fp64 dequantize-and-accumulate; the reference tests compare to.
//  - gemm_fp8_grouped: the grouped (MoE) GEMM as gemm_fp8_blockwise's product on each expert's rows.
#include <algorithm>
#include <array>
#include <cmath>
#include <thread>
#include <vector>

#include "fp8lm/cpu.h"
#include "fp8lm/grouped_gemm.h"
#include "fp8lm/parallel.h"

namespace fp8lm::cpu {

namespace {

// Decoding through a table is exact and much faster than fp8_decode per element.
const std::array<float, 256>& decode_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) t[i] = fp8_decode(fp8_e4m3{static_cast<std::uint8_t>(i)});
    return t;
  }();
  return table;
}

void decode_row(const fp8_e4m3* src, int k, float* dst) {
  const auto& table = decode_table();
  for (int i = 0; i < k; ++i) dst[i] = table[src[i].bits];
}

// Dot product of one 128-k block with 8 independent partial sums (vectorizable without
// reassociating a single sum).
float block_dot(const float* a, const float* b, int len) {
  constexpr int kLanes = 8;
  std::array<float, kLanes> acc{};
  int i = 0;
  for (; i + kLanes <= len; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += a[i + l] * b[i + l];
  float tail = 0.0f;
  for (; i < len; ++i) tail += a[i] * b[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

// The product on checked arguments. Alignment is the GPU's rule only: the grouped twin runs it on
// each expert's slice, whose scale and output rows need not start on 16 bytes.
void gemm_checked(const Fp8GemmArgs& args, int threads) {
  const int m = args.m, n = args.n, k = args.k;
  if (m == 0) return;
  const int kb = ceil_div(k, kQuantGroup);

  std::vector<float> a(static_cast<std::size_t>(m) * k);
  for (int r = 0; r < m; ++r) decode_row(args.a + static_cast<std::size_t>(r) * k, k, &a[static_cast<std::size_t>(r) * k]);

  auto work = [&](long long n_begin, long long n_end) {
    std::vector<float> brow(k);
    for (int col = static_cast<int>(n_begin); col < n_end; ++col) {
      decode_row(args.b + static_cast<std::size_t>(col) * k, k, brow.data());
      const float* sb = args.b_scales + static_cast<std::size_t>(col / kQuantGroup) * kb;
      for (int r = 0; r < m; ++r) {
        const float* arow = &a[static_cast<std::size_t>(r) * k];
        const float* sa = args.a_scales + static_cast<std::size_t>(r) * kb;
        float acc = 0.0f;
        for (int b = 0; b < kb; ++b) {
          const int k0 = b * kQuantGroup;
          const int len = std::min(kQuantGroup, k - k0);
          acc += block_dot(arow + k0, brow.data() + k0, len) * (sa[b] * sb[b]);
        }
        args.out[static_cast<std::size_t>(r) * n + col] = float_to_bf16(acc);
      }
    }
  };
  parallel_ranges(n, work, threads);
}

}  // namespace

Status gemm_fp8_blockwise(const Fp8GemmArgs& args, int threads) {
  FP8LM_RETURN_IF_ERROR(validate(args));
  gemm_checked(args, threads);
  return Status::Ok();
}

Status gemm_fp8_blockwise_oracle(const Fp8GemmArgs& args, std::span<const int> rows, double* out,
                                 double* abs_out) {
  FP8LM_RETURN_IF_ERROR(validate_gemm_inputs(args));
  const int n = args.n, k = args.k;
  const int kb = ceil_div(k, kQuantGroup);
  std::vector<int> all_rows;
  if (rows.empty()) {
    all_rows.resize(args.m);
    for (int r = 0; r < args.m; ++r) all_rows[r] = r;
    rows = all_rows;
  }
  for (int r : rows)
    if (r < 0 || r >= args.m) return Status::Error("gemm_fp8_blockwise_oracle: row " + std::to_string(r) + " is outside [0, m)");

  // Dequantize the chosen rows of A once; threads split the columns (m is often tiny).
  const auto& table = decode_table();
  const int count = static_cast<int>(rows.size());
  std::vector<double> a(static_cast<std::size_t>(count) * k);
  for (int i = 0; i < count; ++i)
    for (int c = 0; c < k; ++c)
      a[static_cast<std::size_t>(i) * k + c] =
          static_cast<double>(table[args.a[static_cast<std::size_t>(rows[i]) * k + c].bits]) *
          args.a_scales[static_cast<std::size_t>(rows[i]) * kb + c / kQuantGroup];

  auto work = [&](long long n_begin, long long n_end) {
    std::vector<double> brow(k);
    for (int col = static_cast<int>(n_begin); col < n_end; ++col) {
      const float* sb = args.b_scales + static_cast<std::size_t>(col / kQuantGroup) * kb;
      for (int c = 0; c < k; ++c)
        brow[c] = static_cast<double>(table[args.b[static_cast<std::size_t>(col) * k + c].bits]) *
                  sb[c / kQuantGroup];
      for (int i = 0; i < count; ++i) {
        const double* arow = &a[static_cast<std::size_t>(i) * k];
        double acc = 0.0, abs_acc = 0.0;
        for (int c = 0; c < k; ++c) {
          const double prod = arow[c] * brow[c];
          acc += prod;
          abs_acc += std::fabs(prod);
        }
        out[static_cast<std::size_t>(i) * n + col] = acc;
        if (abs_out) abs_out[static_cast<std::size_t>(i) * n + col] = abs_acc;
      }
    }
  };
  parallel_ranges(n, work);
  return Status::Ok();
}

Status gemm_fp8_grouped(const Fp8GroupedGemmArgs& args, int threads) {
  FP8LM_RETURN_IF_ERROR(validate(args));
  if (args.total_rows == 0) return Status::Ok();
  FP8LM_RETURN_IF_ERROR(validate_grouped_offsets(args, args.offsets));
  for (int e = 0; e < args.num_experts; ++e) {
    if (args.offsets[e + 1] == args.offsets[e]) continue;
    gemm_checked(grouped_expert_args(args, e, args.offsets[e], args.offsets[e + 1]), threads);
  }
  return Status::Ok();
}

}  // namespace fp8lm::cpu
