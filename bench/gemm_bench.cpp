#include "bench/gemm_bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "bench/ceilings.h"
#include "bench/device_kernels.h"
#include "bench/graph_timer.h"
#include "bench/result_files.h"
#include "fp8lm/cuda_status.h"
#include "gemm/cublaslt.h"
#include "fp8lm/cpu.h"
#include "fp8lm/device_buffer.h"
#include "fp8lm/gemm.h"
#include "fp8lm/grouped_gemm.h"
#include "fp8lm/oracle_check.h"
#include "fp8lm/qwen3_models.h"
#include "fp8lm/random.h"
#include "fp8lm_source_revision.h"  // generated at build time (bench/CMakeLists.txt)

namespace fp8lm::bench {

namespace {

using json = nlohmann::json;

// Buffers are rotated until the working set is this many times the L2 size.
constexpr double kWorkingSetOverL2 = 3.0;
constexpr int kMaxSets = 256;
// A peer's output may differ from ours by accumulation order and bf16 rounding only.
constexpr double kMaxPeerDiff = 1e-2;
// A contiguous run of `sets` equally sized buffers (each 256-byte aligned), for rotation.
template <typename T>
struct Rotation {
  DeviceBuffer<T> storage;
  std::size_t stride = 0;  // elements between sets
  Rotation(std::size_t count, int sets)
      : storage(((count * sizeof(T) + 255) / 256 * 256 / sizeof(T)) * sets),
        stride((count * sizeof(T) + 255) / 256 * 256 / sizeof(T)) {}
  T* at(int set) const { return storage.get() + stride * set; }
};

// A [rows, cols] row-major scale tensor in cuBLASLt's layout (host side, setup only, never timed):
// transposed or not, and with the contiguous dimension padded to a multiple of 4 floats (16 bytes):
// without the padding cuBLASLt reads k = 768 (6 scale blocks) wrongly.
std::vector<float> to_lt_scales(const std::vector<float>& v, int rows, int cols, bool transposed) {
  const int out_rows = transposed ? cols : rows, out_cols = transposed ? rows : cols;
  const int ld = (out_cols + 3) / 4 * 4;
  std::vector<float> t(static_cast<std::size_t>(out_rows) * ld, 0.0f);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const std::size_t dst = transposed ? static_cast<std::size_t>(c) * ld + r : static_cast<std::size_t>(r) * ld + c;
      t[dst] = v[static_cast<std::size_t>(r) * cols + c];
    }
  return t;
}

// Which scale layout cuBLASLt's blockwise mode expects is not spelled out in its header, so the
// bench finds out: a small problem is run in each candidate layout and compared with the fp64
// oracle. Returns the first layout that matches; none matching is reported, not hidden. The probe's
// m, ceil(n/128) and ceil(k/128) are multiples of 4 so that any padding of the scale tensors to
// 16 bytes cannot matter here; each benchmark cell compares cuBLASLt's output with ours anyway.
Status probe_lt_scale_layout(const LtContext& lt, std::optional<LtScaleLayout>* found, std::string* report) {
  const int m = 256, n = 512, k = 1024, kb = ceil_div(k, kQuantGroup), nb = ceil_div(n, kQuantGroup);
  Rng rng(42);
  const HostGemmProblem p = random_gemm_problem(m, n, k, rng);
  const std::vector<float>& sa = p.a_scales;
  const std::vector<float>& sb = p.b_scales;
  std::vector<double> ref(static_cast<std::size_t>(m) * n), abs_ref(ref.size());
  FP8LM_RETURN_IF_ERROR(cpu::gemm_fp8_blockwise_oracle(p.args(nullptr), {}, ref.data(), abs_ref.data()));
  DeviceBuffer<fp8_e4m3> da(p.a), db(p.b);
  DeviceBuffer<bf16> out(static_cast<std::size_t>(m) * n);
  std::vector<int> rows(m);
  for (int r = 0; r < m; ++r) rows[r] = r;
  for (int variant = 0; variant < 4; ++variant) {
    LtScaleLayout layout{(variant & 1) != 0, (variant & 2) != 0};
    DeviceBuffer<float> dsa(to_lt_scales(sa, m, kb, layout.a_transposed));
    DeviceBuffer<float> dsb(to_lt_scales(sb, nb, kb, layout.b_transposed));
    std::unique_ptr<LtGemm> g;
    Status s = LtGemm::create(lt, LtKind::kFp8Blockwise, m, n, k, layout, &g);
    if (s.ok()) {
      out.fill_bytes(0xFF);
      s = g->run(da.get(), dsa.get(), db.get(), dsb.get(), out.get(), nullptr);
    }
    if (s.ok()) s = cuda_status(cudaDeviceSynchronize(), "cuBLASLt probe");
    if (!s.ok()) {
      *report += layout.describe() + ": " + s.message() + "; ";
      continue;
    }
    // cuBLASLt's FP8 on Hopper accumulates like our wgmma kernels (see oracle_check.h); a wrong
    // scale layout misses by O(1), far outside either bound.
    const auto check = check_against_oracle(out.download(), m, n, rows, ref.data(), abs_ref.data(), kAccumTolWgmmaFp8);
    *report += fmt::format("{}: rel. error {:.2e}; ", layout.describe(), check.rel_frobenius);
    // A peer is judged by its overall error only: its accumulation order is its own business.
    if (check.non_finite == 0 && check.rel_frobenius <= kMaxPeerDiff) {
      *found = layout;
      return Status::Ok();
    }
  }
  return Status::Ok();
}

// Relative Frobenius difference of two bf16 outputs over their first `rows` rows.
double rel_diff(const DeviceBuffer<bf16>& x, const bf16* y_device, int rows, int n) {
  const std::size_t count = static_cast<std::size_t>(rows) * n;
  std::vector<bf16> hx(count), hy(count);
  if (cudaMemcpy(hx.data(), x.get(), count * sizeof(bf16), cudaMemcpyDeviceToHost) != cudaSuccess ||
      cudaMemcpy(hy.data(), y_device, count * sizeof(bf16), cudaMemcpyDeviceToHost) != cudaSuccess)
    return NAN;
  double e = 0, r = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const double a = bf16_to_float(hx[i]), b = bf16_to_float(hy[i]);
    e += (a - b) * (a - b);
    r += b * b;
  }
  return r > 0 ? std::sqrt(e / r) : std::sqrt(e);
}

struct CellResult {
  json j;
  std::string md;
};

Status bench_cell(const LtContext& lt, const DeviceInfo& device, const Ceilings& ceil,
                  const std::optional<LtScaleLayout>& lt_layout, const GemmShape& shape, int m,
                  const GemmBenchOptions& opt, CellResult* result) {
  const int n = shape.n, k = shape.k, kb = ceil_div(k, kQuantGroup), nb = ceil_div(n, kQuantGroup);
  const double flops = 2.0 * m * n * static_cast<double>(k);
  const double bytes = static_cast<double>(m) * k + 4.0 * m * kb + static_cast<double>(n) * k + 4.0 * nb * kb +
                       2.0 * m * n;
  const double floor_us = std::max(bytes / (ceil.copy_gbps * 1e3), flops / (ceil.fp8_tflops * 1e6));
  const int sets = std::clamp(static_cast<int>(std::ceil(kWorkingSetOverL2 * device.l2_bytes / bytes)), 2, kMaxSets);

  json j = {{"model", shape.model}, {"layer", shape.layer}, {"m", m}, {"n", n}, {"k", k},
            {"flops", flops}, {"bytes", bytes}, {"floor_us", floor_us}, {"buffer_sets", sets}};

  Rotation<fp8_e4m3> a(static_cast<std::size_t>(m) * k, sets), b(static_cast<std::size_t>(n) * k, sets);
  Rotation<float> sa(static_cast<std::size_t>(m) * kb, sets), sb(static_cast<std::size_t>(nb) * kb, sets);
  Rotation<bf16> out(static_cast<std::size_t>(m) * n, sets);
  FP8LM_RETURN_IF_ERROR(fill_random_fp8(a.storage.get(), a.storage.size(), 11, nullptr));
  FP8LM_RETURN_IF_ERROR(fill_random_fp8(b.storage.get(), b.storage.size(), 12, nullptr));
  FP8LM_RETURN_IF_ERROR(fill_random_scales(sa.storage.get(), sa.storage.size(), 13, 1e-3f, 1e-2f, nullptr));
  FP8LM_RETURN_IF_ERROR(fill_random_scales(sb.storage.get(), sb.storage.size(), 14, 1e-5f, 1e-4f, nullptr));
  auto args = [&](int s) { return Fp8GemmArgs{a.at(s), sa.at(s), b.at(s), sb.at(s), out.at(s), m, n, k}; };

  auto time_ours = [&](const GemmConfig* config, Timing* t) {
    return time_with_graph([&](int s, cudaStream_t st) { return gemm_fp8_blockwise(args(s), st, config); }, sets,
                           opt.replays, t);
  };
  Timing ours;
  FP8LM_RETURN_IF_ERROR(time_ours(nullptr, &ours));
  const GemmConfig picked = pick_gemm_config(m, n, k, device);
  j["ours"] = {{"us", ours.median_us}, {"min_us", ours.min_us}, {"max_us", ours.max_us}, {"config", picked.name()},
               {"tflops", flops / (ours.median_us * 1e6)}, {"gbps", bytes / (ours.median_us * 1e3)},
               {"pct_floor", 100.0 * floor_us / ours.median_us}};
  if (opt.all_configs) {
    json configs = json::object();
    for (const GemmConfig& c : gemm_configs()) {
      if (!gemm_config_runs_on(c, device) || !gemm_config_takes_rows(c, m)) continue;
      Timing t;
      const Status s = time_ours(&c, &t);
      configs[c.name()] = s.ok() ? json(t.median_us) : json(s.message());
    }
    j["ours"]["configs_us"] = configs;
  }

  // cuBLASLt blockwise on the same buffers (scales in the layout it expects, from the probe).
  std::string lt_cell = "unsupported";
  double lt_us = NAN;
  if (!lt_layout) {
    j["cublaslt_blockwise"] = {{"error", "no scale layout matched the oracle in the probe"}};
  } else {
    std::unique_ptr<LtGemm> g;
    Status s = LtGemm::create(lt, LtKind::kFp8Blockwise, m, n, k, *lt_layout, &g);
    if (s.ok()) {
      Rotation<bf16> lt_out(static_cast<std::size_t>(m) * n, 1);
      // Scales in cuBLASLt's layout: same values as ours (transposed where the probe says so, padded).
      std::vector<DeviceBuffer<float>> lt_sa, lt_sb;
      for (int st = 0; st < sets; ++st) {
        std::vector<float> hsa(static_cast<std::size_t>(m) * kb), hsb(static_cast<std::size_t>(nb) * kb);
        cudaMemcpy(hsa.data(), sa.at(st), hsa.size() * 4, cudaMemcpyDeviceToHost);
        cudaMemcpy(hsb.data(), sb.at(st), hsb.size() * 4, cudaMemcpyDeviceToHost);
        lt_sa.emplace_back(to_lt_scales(hsa, m, kb, lt_layout->a_transposed));
        lt_sb.emplace_back(to_lt_scales(hsb, nb, kb, lt_layout->b_transposed));
      }
      Timing t;
      s = time_with_graph(
          [&](int st, cudaStream_t stream) {
            return g->run(a.at(st), lt_sa[st].get(), b.at(st), lt_sb[st].get(), out.at(st), stream);
          },
          sets, opt.replays, &t);
      if (s.ok()) {
        // Agreement with ours on set 0 (first rows): both compute the same blockwise product.
        FP8LM_RETURN_IF_ERROR(g->run(a.at(0), lt_sa[0].get(), b.at(0), lt_sb[0].get(), lt_out.at(0), nullptr));
        FP8LM_RETURN_IF_ERROR(gemm_fp8_blockwise(args(0), nullptr));
        FP8LM_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
        const double diff = rel_diff(lt_out.storage, out.at(0), std::min(m, 64), n);
        j["cublaslt_blockwise"] = {{"us", t.median_us}, {"pct_floor", 100.0 * floor_us / t.median_us},
                                   {"tflops", flops / (t.median_us * 1e6)}, {"rel_diff_vs_ours", diff}};
        // Both round the same fp32 sums to bf16: anything beyond a few bf16 ulps is a wrong result.
        if (diff <= kMaxPeerDiff) {
          lt_us = t.median_us;
          lt_cell = fmt::format("{:.1f}", t.median_us);
        } else {
          lt_cell = fmt::format("wrong result (diff {:.1e})", diff);
          j["cublaslt_blockwise"]["error"] = "output differs from ours (and the oracle-checked kernel)";
        }
      }
    }
    if (!s.ok()) j["cublaslt_blockwise"] = {{"error", s.message()}};
  }

  // cuBLAS(Lt) bf16 with the same shape, on its own rotating bf16 buffers (twice the bytes).
  double bf16_us = NAN;
  {
    const double bf16_bytes = 2.0 * (static_cast<double>(m) * k + static_cast<double>(n) * k + m * n);
    const int bsets = std::clamp(static_cast<int>(std::ceil(kWorkingSetOverL2 * device.l2_bytes / bf16_bytes)), 2, kMaxSets);
    std::unique_ptr<LtGemm> g;
    Status s = LtGemm::create(lt, LtKind::kBf16, m, n, k, {}, &g);
    if (s.ok()) {
      Rotation<bf16> ba(static_cast<std::size_t>(m) * k, bsets), bb(static_cast<std::size_t>(n) * k, bsets),
          bo(static_cast<std::size_t>(m) * n, bsets);
      FP8LM_RETURN_IF_ERROR(fill_random_bf16(ba.storage.get(), ba.storage.size(), 21, 1.0f, nullptr));
      FP8LM_RETURN_IF_ERROR(fill_random_bf16(bb.storage.get(), bb.storage.size(), 22, 0.02f, nullptr));
      Timing t;
      s = time_with_graph(
          [&](int st, cudaStream_t stream) { return g->run(ba.at(st), nullptr, bb.at(st), nullptr, bo.at(st), stream); },
          bsets, opt.replays, &t);
      if (s.ok()) {
        bf16_us = t.median_us;
        j["cublas_bf16"] = {{"us", t.median_us}, {"tflops", flops / (t.median_us * 1e6)}};
      }
    }
    if (!s.ok()) j["cublas_bf16"] = {{"error", s.message()}};
  }

  const double vs_lt = lt_us / ours.median_us, vs_bf16 = bf16_us / ours.median_us;
  if (std::isfinite(vs_lt)) j["speedup_vs_cublaslt"] = vs_lt;
  if (std::isfinite(vs_bf16)) j["speedup_vs_bf16"] = vs_bf16;
  result->md = fmt::format("| {} | {} | {} | {} | {} | {:.1f} | {:.0f} | {:.0f} | {:.1f} | {:.0f}% | {} | {} | {} | {} | {} | {} |\n",
                           shape.model, shape.layer, m, n, k, ours.median_us, flops / (ours.median_us * 1e6),
                           bytes / (ours.median_us * 1e3), floor_us, 100.0 * floor_us / ours.median_us, picked.name(),
                           lt_cell, std::isfinite(lt_us) ? fmt::format("{:.0f}%", 100.0 * floor_us / lt_us) : "–",
                           markdown_cell(bf16_us, "{:.1f}"), markdown_cell(vs_lt, "{:.2f}x"), markdown_cell(vs_bf16, "{:.2f}x"));
  result->j = std::move(j);
  return Status::Ok();
}

// ------------------------------------------------------------------------------------------------
// Grouped (MoE experts, --grouped): one launch of gemm_fp8_grouped against the same experts run one
// GEMM at a time, by cuBLASLt blockwise (the peer of issue 7) and by our dense kernel, each loop
// captured in the same CUDA graph as one "launch". Routing: each token picks top_k distinct experts
// uniformly at random (balanced in expectation). Rotation: `sets` routings over one copy of all
// experts' weights, so consecutive launches touch different experts where the routing is sparse
// (decode); prefill touches every expert each time and exceeds L2 by itself.

// Tokens per grouped cell: one decode step, one 4096-token prefill chunk.
constexpr int kGroupedTokens[] = {1, 4096};
constexpr int kMaxGroupedSets = 16;

// One routing of a grouped cell, on the device, with what the per-expert loops need.
struct GroupedSet {
  std::vector<std::int32_t> offsets;  // host copy
  DeviceBuffer<fp8_e4m3> a;
  DeviceBuffer<float> sa;
  DeviceBuffer<std::int32_t> d_offsets;
  DeviceBuffer<bf16> out, loop_out;  // grouped launch; per-expert loops
  int max_rows = 0;
  // Per expert with rows: its A scales copied to 16-byte aligned buffers (the dense entry point's
  // rule; expert slices of the grouped scale tensors need not start on 16 bytes), ours and
  // cuBLASLt's layouts (the B scales: ExpertScales, once per cell).
  std::vector<int> experts;
  std::vector<DeviceBuffer<float>> sa_ours, sa_lt;
  // cuBLASLt's blockwise FP8 GEMM has no algorithm for some row counts (M = 1 on CUDA 13.0), so
  // its loop runs each expert's rows padded with zero rows to a multiple of kLtRowMultiple, from
  // its own copies of A and into its own outputs (as an engine calling it per expert would).
  std::vector<int> lt_rows;
  std::vector<DeviceBuffer<fp8_e4m3>> a_lt;
  std::vector<DeviceBuffer<bf16>> out_lt;
};

constexpr int kLtRowMultiple = 4;

// Every expert's weight scales in 16-byte aligned buffers of their own, ours and cuBLASLt's layouts
// (the same for every routing set of a cell).
struct ExpertScales {
  std::vector<DeviceBuffer<float>> ours, lt;  // by expert
};

Status make_expert_scales(const DeviceBuffer<float>& sb, int experts, int n, int k,
                          const std::optional<LtScaleLayout>& lt_layout, ExpertScales* out) {
  const int kb = ceil_div(k, kQuantGroup), nb = ceil_div(n, kQuantGroup);
  FP8LM_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  const std::vector<float> host_sb = sb.download();
  for (int e = 0; e < experts; ++e) {
    const std::vector<float> esb(host_sb.begin() + static_cast<std::ptrdiff_t>(e) * nb * kb,
                                 host_sb.begin() + static_cast<std::ptrdiff_t>(e + 1) * nb * kb);
    out->ours.emplace_back(esb);
    if (lt_layout) out->lt.emplace_back(to_lt_scales(esb, nb, kb, lt_layout->b_transposed));
  }
  return Status::Ok();
}

Status make_grouped_set(const Qwen3Dims& model, int tokens, int n, int k, int seed,
                        const std::optional<LtScaleLayout>& lt_layout, GroupedSet* set) {
  const int kb = ceil_div(k, kQuantGroup);
  Rng rng(seed);
  const std::vector<int> counts = random_topk_counts(tokens, model.experts, model.top_k, rng);
  set->offsets.assign(1, 0);
  for (int c : counts) set->offsets.push_back(set->offsets.back() + c);
  const int rows = set->offsets.back();
  set->max_rows = *std::max_element(counts.begin(), counts.end());
  set->a = DeviceBuffer<fp8_e4m3>(static_cast<std::size_t>(rows) * k);
  set->sa = DeviceBuffer<float>(static_cast<std::size_t>(rows) * kb);
  set->d_offsets = DeviceBuffer<std::int32_t>(set->offsets);
  set->out = DeviceBuffer<bf16>(static_cast<std::size_t>(rows) * n);
  set->loop_out = DeviceBuffer<bf16>(static_cast<std::size_t>(rows) * n);
  FP8LM_RETURN_IF_ERROR(fill_random_fp8(set->a.get(), set->a.size(), 100 + seed, nullptr));
  FP8LM_RETURN_IF_ERROR(fill_random_scales(set->sa.get(), set->sa.size(), 200 + seed, 1e-3f, 1e-2f, nullptr));
  FP8LM_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  const std::vector<float> host_sa = set->sa.download();
  for (int e = 0; e < model.experts; ++e) {
    const int first = set->offsets[e], count = counts[e];
    if (count == 0) continue;
    set->experts.push_back(e);
    const std::vector<float> esa(host_sa.begin() + static_cast<std::ptrdiff_t>(first) * kb,
                                 host_sa.begin() + static_cast<std::ptrdiff_t>(first + count) * kb);
    set->sa_ours.emplace_back(esa);
    if (lt_layout) {
      const int padded = ceil_div(count, kLtRowMultiple) * kLtRowMultiple;
      std::vector<float> padded_sa = esa;
      padded_sa.resize(static_cast<std::size_t>(padded) * kb, 0.0f);
      set->lt_rows.push_back(padded);
      set->sa_lt.emplace_back(to_lt_scales(padded_sa, padded, kb, lt_layout->a_transposed));
      DeviceBuffer<fp8_e4m3>& a = set->a_lt.emplace_back(static_cast<std::size_t>(padded) * k);
      FP8LM_CUDA_RETURN_IF_ERROR(cudaMemset(a.get(), 0, a.size()));
      FP8LM_CUDA_RETURN_IF_ERROR(cudaMemcpy(a.get(), set->a.get() + static_cast<std::size_t>(first) * k,
                                            static_cast<std::size_t>(count) * k, cudaMemcpyDeviceToDevice));
      set->out_lt.emplace_back(static_cast<std::size_t>(padded) * n);
    }
  }
  return Status::Ok();
}

Status bench_grouped_cell(const LtContext& lt, const DeviceInfo& device, const Ceilings& ceil,
                          const std::optional<LtScaleLayout>& lt_layout, const Qwen3Dims& model, bool gate_up,
                          int tokens, const GemmBenchOptions& opt, CellResult* result) {
  const int experts = model.experts;
  const int n = gate_up ? 2 * model.intermediate : model.hidden, k = gate_up ? model.hidden : model.intermediate;
  const int kb = ceil_div(k, kQuantGroup), nb = ceil_div(n, kQuantGroup);
  const std::string layer = gate_up ? "expert_gate_up" : "expert_down";

  DeviceBuffer<fp8_e4m3> b(static_cast<std::size_t>(experts) * n * k);
  DeviceBuffer<float> sb(static_cast<std::size_t>(experts) * nb * kb);
  FP8LM_RETURN_IF_ERROR(fill_random_fp8(b.get(), b.size(), 12, nullptr));
  FP8LM_RETURN_IF_ERROR(fill_random_scales(sb.get(), sb.size(), 14, 1e-5f, 1e-4f, nullptr));

  // Bytes of one launch (set 0's routing; the others differ only in which experts): the selected
  // experts' weights and scales, A and its scales, the offsets, the bf16 output.
  ExpertScales expert_scales;
  FP8LM_RETURN_IF_ERROR(make_expert_scales(sb, experts, n, k, lt_layout, &expert_scales));
  std::vector<GroupedSet> sets(1);
  FP8LM_RETURN_IF_ERROR(make_grouped_set(model, tokens, n, k, 0, lt_layout, &sets[0]));
  const int rows = tokens * model.top_k;
  const int used = static_cast<int>(sets[0].experts.size());
  const double flops = 2.0 * rows * n * static_cast<double>(k);
  const double bytes = used * (static_cast<double>(n) * k + 4.0 * nb * kb) + static_cast<double>(rows) * k +
                       4.0 * rows * kb + 4.0 * (experts + 1) + 2.0 * rows * n;
  const double floor_us = std::max(bytes / (ceil.copy_gbps * 1e3), flops / (ceil.fp8_tflops * 1e6));
  const int set_count =
      std::clamp(static_cast<int>(std::ceil(kWorkingSetOverL2 * device.l2_bytes / bytes)), 2, kMaxGroupedSets);
  for (int st = 1; st < set_count; ++st) {
    sets.emplace_back();
    FP8LM_RETURN_IF_ERROR(make_grouped_set(model, tokens, n, k, st, lt_layout, &sets.back()));
  }
  auto grouped_args = [&](int st) {
    const GroupedSet& g = sets[st];
    return Fp8GroupedGemmArgs{g.a.get(), g.sa.get(), b.get(), sb.get(), g.d_offsets.get(), g.out.get(),
                              rows, experts, n, k, g.max_rows};
  };
  // Expert i (of set st's experts with rows) as a dense problem writing into loop_out.
  auto expert_args = [&](int st, int i) {
    const GroupedSet& g = sets[st];
    const int e = g.experts[i], first = g.offsets[e];
    Fp8GroupedGemmArgs ga = grouped_args(st);
    ga.out = g.loop_out.get();
    Fp8GemmArgs a = grouped_expert_args(ga, e, first, g.offsets[e + 1]);
    a.a_scales = g.sa_ours[i].get();
    a.b_scales = expert_scales.ours[e].get();
    return a;
  };

  json j = {{"model", model.name}, {"layer", layer}, {"tokens", tokens}, {"top_k", model.top_k},
            {"experts", experts}, {"experts_used", used}, {"rows", rows}, {"n", n}, {"k", k},
            {"max_rows_per_expert", sets[0].max_rows}, {"flops", flops}, {"bytes", bytes},
            {"floor_us", floor_us}, {"routing_sets", set_count}, {"cublaslt_row_multiple", kLtRowMultiple}};

  // Ours, grouped: the bound a MoE layer has on the host without a synchronisation is the token
  // count; the tight bound (the real largest expert) is timed too, as the gap between them shows
  // what computing the offsets' maximum on the device would buy.
  Timing grouped;
  FP8LM_RETURN_IF_ERROR(time_with_graph(
      [&](int st, cudaStream_t stream) {
        Fp8GroupedGemmArgs a = grouped_args(st);
        a.max_rows_per_expert = tokens;
        return gemm_fp8_grouped(a, stream);
      },
      set_count, opt.replays, &grouped));
  Timing grouped_tight;
  FP8LM_RETURN_IF_ERROR(time_with_graph([&](int st, cudaStream_t stream) { return gemm_fp8_grouped(grouped_args(st), stream); },
                                        set_count, opt.replays, &grouped_tight));
  const GemmConfig picked = pick_grouped_gemm_config(rows, tokens, experts, n, k, device);
  const GemmConfig picked_tight = pick_grouped_gemm_config(rows, sets[0].max_rows, experts, n, k, device);
  j["ours_grouped"] = {{"us", grouped.median_us}, {"min_us", grouped.min_us}, {"max_us", grouped.max_us},
                       {"config", picked.name()}, {"tflops", flops / (grouped.median_us * 1e6)},
                       {"gbps", bytes / (grouped.median_us * 1e3)}, {"pct_floor", 100.0 * floor_us / grouped.median_us}};
  j["ours_grouped_tight_bound"] = {{"us", grouped_tight.median_us}, {"config", picked_tight.name()},
                                   {"pct_floor", 100.0 * floor_us / grouped_tight.median_us}};

  // Ours, one dense GEMM per expert with rows.
  Timing dense;
  FP8LM_RETURN_IF_ERROR(time_with_graph(
      [&](int st, cudaStream_t stream) {
        for (std::size_t i = 0; i < sets[st].experts.size(); ++i)
          FP8LM_RETURN_IF_ERROR(gemm_fp8_blockwise(expert_args(st, static_cast<int>(i)), stream));
        return Status::Ok();
      },
      set_count, opt.replays, &dense));
  FP8LM_RETURN_IF_ERROR(gemm_fp8_grouped(grouped_args(0), nullptr));
  for (std::size_t i = 0; i < sets[0].experts.size(); ++i)
    FP8LM_RETURN_IF_ERROR(gemm_fp8_blockwise(expert_args(0, static_cast<int>(i)), nullptr));
  FP8LM_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  j["ours_dense_per_expert"] = {{"us", dense.median_us}, {"pct_floor", 100.0 * floor_us / dense.median_us},
                                {"rel_diff_vs_grouped", rel_diff(sets[0].loop_out, sets[0].out.get(), rows, n)}};

  // cuBLASLt blockwise, one call per expert with rows (padded: GroupedSet; a plan per distinct
  // padded row count).
  std::string lt_cell = "unsupported";
  double lt_us = NAN;
  if (!lt_layout) {
    j["cublaslt_per_expert"] = {{"error", "no scale layout matched the oracle in the probe"}};
  } else {
    std::map<int, std::unique_ptr<LtGemm>> plans;
    Status s = Status::Ok();
    for (const GroupedSet& g : sets)
      for (int rows_lt : g.lt_rows) {
        if (!s.ok() || plans.count(rows_lt)) continue;
        s = LtGemm::create(lt, LtKind::kFp8Blockwise, rows_lt, n, k, *lt_layout, &plans[rows_lt]);
      }
    auto run_lt = [&](int st, cudaStream_t stream) {
      const GroupedSet& g = sets[st];
      for (std::size_t i = 0; i < g.experts.size(); ++i) {
        const Fp8GemmArgs a = expert_args(st, static_cast<int>(i));
        FP8LM_RETURN_IF_ERROR(plans.at(g.lt_rows[i])
                                  ->run(g.a_lt[i].get(), g.sa_lt[i].get(), a.b, expert_scales.lt[g.experts[i]].get(),
                                        g.out_lt[i].get(), stream));
      }
      return Status::Ok();
    };
    // The check: each expert's real rows copied into loop_out at its offset.
    auto gather_lt = [&]() -> Status {
      const GroupedSet& g = sets[0];
      for (std::size_t i = 0; i < g.experts.size(); ++i) {
        const int e = g.experts[i];
        FP8LM_CUDA_RETURN_IF_ERROR(cudaMemcpy(g.loop_out.get() + static_cast<std::size_t>(g.offsets[e]) * n,
                                              g.out_lt[i].get(),
                                              static_cast<std::size_t>(g.offsets[e + 1] - g.offsets[e]) * n * sizeof(bf16),
                                              cudaMemcpyDeviceToDevice));
      }
      return Status::Ok();
    };
    Timing t;
    if (s.ok()) s = time_with_graph(run_lt, set_count, opt.replays, &t);
    if (s.ok()) s = run_lt(0, nullptr);
    if (s.ok()) s = gather_lt();
    if (s.ok()) s = cuda_status(cudaDeviceSynchronize(), "cuBLASLt per-expert loop");
    if (s.ok()) {
      const double diff = rel_diff(sets[0].loop_out, sets[0].out.get(), rows, n);
      j["cublaslt_per_expert"] = {{"us", t.median_us}, {"pct_floor", 100.0 * floor_us / t.median_us},
                                  {"tflops", flops / (t.median_us * 1e6)}, {"rel_diff_vs_grouped", diff}};
      if (diff <= kMaxPeerDiff) {
        lt_us = t.median_us;
        lt_cell = fmt::format("{:.1f}", t.median_us);
      } else {
        lt_cell = fmt::format("wrong result (diff {:.1e})", diff);
      }
    } else {
      j["cublaslt_per_expert"] = {{"error", s.message()}};
    }
  }

  const double vs_lt = lt_us / grouped.median_us, vs_dense = dense.median_us / grouped.median_us;
  if (std::isfinite(vs_lt)) j["speedup_vs_cublaslt_per_expert"] = vs_lt;
  j["speedup_vs_dense_per_expert"] = vs_dense;
  result->md = fmt::format(
      "| {} | {} | {} | {} | {} | {} | {} | {:.1f} | {:.0f} | {:.0f} | {:.1f} | {:.0f}% | {} | {:.1f} | {} | {:.1f} | {} | {} |\n",
      model.name, layer, tokens, used, rows, n, k, grouped.median_us, flops / (grouped.median_us * 1e6),
      bytes / (grouped.median_us * 1e3), floor_us, 100.0 * floor_us / grouped.median_us, picked.name(),
      grouped_tight.median_us, lt_cell, dense.median_us, markdown_cell(vs_lt, "{:.2f}x"), markdown_cell(vs_dense, "{:.2f}x"));
  result->j = std::move(j);
  return Status::Ok();
}

}  // namespace

Status run_gemm_bench(const GemmBenchOptions& opt) {
  DeviceInfo device;
  FP8LM_RETURN_IF_ERROR(current_device(&device));
  FP8LM_RETURN_IF_ERROR(check_fp8_support(device));
  std::unique_ptr<LtContext> lt;
  FP8LM_RETURN_IF_ERROR(LtContext::create(&lt));

  std::vector<GemmShape> shapes;
  for (const GemmShape& s : qwen3_benchmark_gemm_shapes())
    if (opt.models.empty() || std::find(opt.models.begin(), opt.models.end(), s.model) != opt.models.end())
      shapes.push_back(s);
  // --grouped: the MoE models' expert GEMMs (--models filters them too; default: all of them).
  std::vector<Qwen3Dims> moe_models;
  for (const Qwen3Dims& d : kQwen3Models)
    if (d.experts > 0 && (opt.models.empty() || std::find(opt.models.begin(), opt.models.end(), d.name) != opt.models.end()))
      moe_models.push_back(d);
  if (opt.grouped ? moe_models.empty() : shapes.empty()) return Status::Error("bench gemm: no model matches --models");

  const auto t0 = std::chrono::steady_clock::now();
  fmt::print("bench gemm on {} (sm_{}, {} SMs, {} MB L2)\n", device.name, device.sm_version(), device.sm_count,
             device.l2_bytes >> 20);
  Ceilings ceil;
  FP8LM_RETURN_IF_ERROR(measure_ceilings(*lt, opt.replays, &ceil));
  fmt::print("ceilings: copy {:.0f} GB/s (read + write), FP8 tensorwise cuBLASLt {:.0f} TFLOP/s\n", ceil.copy_gbps,
             ceil.fp8_tflops);
  std::optional<LtScaleLayout> lt_layout;
  std::string probe_report;
  FP8LM_RETURN_IF_ERROR(probe_lt_scale_layout(*lt, &lt_layout, &probe_report));
  fmt::print("cuBLASLt blockwise scale layout probe: {}-> {}\n", probe_report,
             lt_layout ? lt_layout->describe() : "none matched");

  json cells = json::array();
  std::string md_rows;
  int done = 0;
  auto record = [&](CellResult& cell, int total) {
    ++done;
    fmt::print("[{:3}/{}] {}", done, total, cell.md);
    std::fflush(stdout);
    cells.push_back(std::move(cell.j));
    md_rows += cell.md;
  };
  if (opt.grouped) {
    for (const Qwen3Dims& model : moe_models)
      for (bool gate_up : {true, false})
        for (int tokens : kGroupedTokens) {
          CellResult cell;
          FP8LM_RETURN_IF_ERROR(bench_grouped_cell(*lt, device, ceil, lt_layout, model, gate_up, tokens, opt, &cell));
          record(cell, static_cast<int>(moe_models.size() * 2 * std::size(kGroupedTokens)));
        }
  } else {
    for (const GemmShape& shape : shapes)
      for (int m : opt.ms) {
        CellResult cell;
        FP8LM_RETURN_IF_ERROR(bench_cell(*lt, device, ceil, lt_layout, shape, m, opt, &cell));
        record(cell, static_cast<int>(shapes.size() * opt.ms.size()));
      }
  }

  int runtime = 0;
  cudaRuntimeGetVersion(&runtime);
  int lt_version = static_cast<int>(cublasLtGetVersion());
  const std::string date = utc_date();
  json doc = {{"benchmark", "gemm"},
              {"date", date},
              {"gpu", device.name},
              {"source", FP8LM_GIT_DESCRIBE},
              {"sm", device.sm_version()},
              {"sm_count", device.sm_count},
              {"l2_bytes", device.l2_bytes},
              {"cuda_runtime", runtime},
              {"cublaslt_version", lt_version},
              {"method", "CUDA-graph replay, median of replays, buffers rotated to exceed 3x L2; floor = "
                         "max(bytes / copy bandwidth, FLOPs / FP8 peak), both measured in this run"},
              {"copy_gbps", ceil.copy_gbps},
              {"fp8_peak_tflops", ceil.fp8_tflops},
              {"cublaslt_scale_layout", lt_layout ? lt_layout->describe() : "none matched"},
              {"cublaslt_probe", probe_report},
              {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()},
              {"cells", cells}};

  const std::string stem = fmt::format("{}/gemm{}-{}-{}{}", opt.out_dir, opt.grouped ? "-grouped" : "", date,
                                       file_safe(device.name), opt.tag.empty() ? "" : "-" + file_safe(opt.tag));
  std::ostringstream md;
  md << fmt::format("# fp8lm bench gemm — {} — {}\n\nSource: `{}`.\n\n", device.name, date, FP8LM_GIT_DESCRIBE)
     << fmt::format("Ceilings measured in this run: copy {:.0f} GB/s (bytes read + written), FP8 peak {:.0f} TFLOP/s "
                    "(cuBLASLt tensorwise FP8 with fast accumulation, {}x{}x{}). Floor = max(bytes / copy bandwidth, FLOPs / FP8 peak); "
                    "bytes = A + A scales + B + B scales + bf16 output.\n\n",
                    ceil.copy_gbps, ceil.fp8_tflops, kPeakM, kPeakN, kPeakK)
     << "Timing: CUDA-graph replay, median per launch, buffers rotated over more than 3x L2. cuBLASLt blockwise: "
        "VEC128 (activations) x BLK128x128 (weights) scales, "
     << (lt_layout ? lt_layout->describe() : "no layout matched the oracle") << ". bf16: cuBLASLt bf16 GEMM.\n\n"
     << (opt.grouped
             ? fmt::format(
                   "Grouped (MoE experts): tokens x top-k rows routed to the experts at random (each token picks "
                   "top-k distinct experts); bytes = the selected experts' weights and scales + A + A scales + "
                   "offsets + bf16 output. `ours` is one gemm_fp8_grouped launch with the host's bound (max rows per "
                   "expert = tokens); `tight` with the real largest expert; the loops run one GEMM per expert with "
                   "rows (cuBLASLt blockwise, each expert's rows padded with zero rows to a multiple of {} because it "
                   "has no algorithm for some row counts such as 1; our dense entry point), captured in the same "
                   "graph.\n\n",
                   kLtRowMultiple) +
                   "| model | layer | tokens | experts used | rows | N | K | ours µs | TFLOP/s | GB/s | floor µs | % floor | "
                   "config | tight µs | cuBLASLt loop µs | our dense loop µs | vs cuBLASLt loop | vs dense loop |\n"
                   "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
             : std::string("| model | layer | M | N | K | ours µs | TFLOP/s | GB/s | floor µs | % floor | config | cuBLASLt µs | "
               "cuBLASLt % floor | bf16 µs | vs cuBLASLt | vs bf16 |\n"
               "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"))
     << md_rows;
  FP8LM_RETURN_IF_ERROR(write_result_files(stem, doc, md.str()));
  fmt::print("wrote {}.json and {}.md ({:.0f} s)\n", stem, stem, doc["seconds"].get<double>());
  return Status::Ok();
}

}  // namespace fp8lm::bench
