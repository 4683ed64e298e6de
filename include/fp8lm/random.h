// Fast, seeded random data for tests, self-checks and benchmarks (never zeros unless asked).
#pragma once

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "fp8lm/gemm.h"
#include "fp8lm/grouped_gemm.h"
#include "fp8lm/numerics.h"

namespace fp8lm {

// splitmix64: tiny, fast and good enough to fill hundreds of MB of test data.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  double normal() {
    const double u1 = uniform() + 1e-300, u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  std::uint64_t state_;
};

// `count` bf16 values center + N(0, scale^2).
inline std::vector<bf16> random_bf16(std::size_t count, Rng& rng, double scale = 1.0, double center = 0.0) {
  std::vector<bf16> v(count);
  for (auto& x : v) x = float_to_bf16(static_cast<float>(center + rng.normal() * scale));
  return v;
}

// Random e4m3 codes over the whole finite range (every code but the two NaNs).
inline void fill_fp8(std::vector<fp8_e4m3>& v, Rng& rng) {
  std::size_t i = 0;
  while (i < v.size()) {
    std::uint64_t r = rng.next();
    for (int b = 0; b < 8 && i < v.size(); ++b, r >>= 8) {
      const auto code = static_cast<std::uint8_t>(r & 0xFF);
      if ((code & 0x7F) != 0x7F) v[i++] = fp8_e4m3{code};
    }
  }
}

// Positive scales spread over `decades` orders of magnitude around `center`.
inline void fill_scales(std::vector<float>& v, Rng& rng, double center = 1e-3, double decades = 2.0) {
  for (float& s : v) s = static_cast<float>(center * std::pow(10.0, rng.uniform(-decades / 2, decades / 2)));
}

// A random FP8 blockwise GEMM problem on the host: codes over the whole finite range, scales
// spread over two decades around typical activation (1e-2) and weight (1e-4) values.
struct HostGemmProblem {
  int m = 0, n = 0, k = 0;
  std::vector<fp8_e4m3> a, b;
  std::vector<float> a_scales, b_scales;
  Fp8GemmArgs args(bf16* out) const { return {a.data(), a_scales.data(), b.data(), b_scales.data(), out, m, n, k}; }
};

inline HostGemmProblem random_gemm_problem(int m, int n, int k, Rng& rng, double a_scale_center = 1e-2,
                                           double b_scale_center = 1e-4) {
  const int kb = ceil_div(k, kQuantGroup);
  HostGemmProblem p;
  p.m = m, p.n = n, p.k = k;
  p.a.resize(static_cast<std::size_t>(m) * k);
  p.b.resize(static_cast<std::size_t>(n) * k);
  p.a_scales.resize(static_cast<std::size_t>(m) * kb);
  p.b_scales.resize(static_cast<std::size_t>(ceil_div(n, kQuantGroup)) * kb);
  fill_fp8(p.a, rng);
  fill_fp8(p.b, rng);
  fill_scales(p.a_scales, rng, a_scale_center);
  fill_scales(p.b_scales, rng, b_scale_center);
  return p;
}

// A random grouped (MoE) GEMM problem on the host: rows_per_expert[e] rows for expert e (sorted
// by expert), every expert's weights stacked; inputs as random_gemm_problem's. max_rows_per_expert
// is the largest count (the tightest valid bound).
struct HostGroupedGemmProblem {
  int total_rows = 0, num_experts = 0, n = 0, k = 0, max_rows_per_expert = 0;
  std::vector<fp8_e4m3> a, b;
  std::vector<float> a_scales, b_scales;
  std::vector<std::int32_t> offsets;  // [num_experts + 1]
  // Host pointers throughout (the CPU twin's form); GPU callers replace each with a device copy.
  Fp8GroupedGemmArgs args(bf16* out) const {
    return {a.data(), a_scales.data(), b.data(), b_scales.data(), offsets.data(), out,
            total_rows, num_experts, n, k, max_rows_per_expert};
  }
};

// Every expert's weights (b, b_scales) of a grouped problem with no rows yet.
inline HostGroupedGemmProblem random_grouped_weights(int num_experts, int n, int k, Rng& rng,
                                                     double b_scale_center = 1e-4) {
  HostGroupedGemmProblem p;
  p.num_experts = num_experts;
  p.n = n, p.k = k;
  p.b.resize(static_cast<std::size_t>(num_experts) * n * k);
  p.b_scales.resize(static_cast<std::size_t>(num_experts) * ceil_div(n, kQuantGroup) * ceil_div(k, kQuantGroup));
  fill_fp8(p.b, rng);
  fill_scales(p.b_scales, rng, b_scale_center);
  p.offsets.assign(num_experts + 1, 0);
  return p;
}

// New activations for `p`: rows_per_expert[e] rows for expert e (offsets, total_rows and
// max_rows_per_expert follow; the weights stay).
inline void set_random_rows(HostGroupedGemmProblem& p, const std::vector<int>& rows_per_expert, Rng& rng,
                            double a_scale_center = 1e-2) {
  const int kb = ceil_div(p.k, kQuantGroup);
  p.offsets.assign(1, 0);
  for (int rows : rows_per_expert) p.offsets.push_back(p.offsets.back() + rows);
  p.total_rows = p.offsets.back();
  p.max_rows_per_expert = std::max(1, *std::max_element(rows_per_expert.begin(), rows_per_expert.end()));
  p.a.resize(static_cast<std::size_t>(p.total_rows) * p.k);
  p.a_scales.resize(static_cast<std::size_t>(p.total_rows) * kb);
  fill_fp8(p.a, rng);
  fill_scales(p.a_scales, rng, a_scale_center);
}

inline HostGroupedGemmProblem random_grouped_problem(const std::vector<int>& rows_per_expert, int n, int k, Rng& rng,
                                                     double a_scale_center = 1e-2, double b_scale_center = 1e-4) {
  HostGroupedGemmProblem p = random_grouped_weights(static_cast<int>(rows_per_expert.size()), n, k, rng, b_scale_center);
  set_random_rows(p, rows_per_expert, rng, a_scale_center);
  return p;
}

// moe_route-shaped routing [tokens, top_k]: each token picks top_k distinct experts uniformly at
// random among the first `candidates` (num_experts when 0; fewer leaves experts empty), in random
// order.
inline std::vector<std::int32_t> random_routing(int tokens, int num_experts, int top_k, Rng& rng,
                                                int candidates = 0) {
  if (candidates == 0) candidates = num_experts;
  std::vector<std::int32_t> routing(static_cast<std::size_t>(tokens) * top_k);
  std::vector<std::int32_t> experts(candidates);
  for (int t = 0; t < tokens; ++t) {
    std::iota(experts.begin(), experts.end(), 0);
    for (int j = 0; j < top_k; ++j) {  // a partial Fisher-Yates shuffle
      const int pick = j + static_cast<int>(rng.next() % static_cast<std::uint64_t>(candidates - j));
      std::swap(experts[j], experts[pick]);
      routing[static_cast<std::size_t>(t) * top_k + j] = experts[j];
    }
  }
  return routing;
}

// Rows per expert of random_routing (balanced routing in expectation, as a MoE layer's plan would
// count them).
inline std::vector<int> random_topk_counts(int tokens, int num_experts, int top_k, Rng& rng) {
  std::vector<int> counts(num_experts, 0);
  for (std::int32_t e : random_routing(tokens, num_experts, top_k, rng)) ++counts[e];
  return counts;
}

}  // namespace fp8lm
