#include "bench/gemm_bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
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
      if (!gemm_config_runs_on(c, device)) continue;
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
  if (shapes.empty()) return Status::Error("bench gemm: no model matches --models");

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
  const int total = static_cast<int>(shapes.size() * opt.ms.size());
  int done = 0;
  for (const GemmShape& shape : shapes)
    for (int m : opt.ms) {
      CellResult cell;
      FP8LM_RETURN_IF_ERROR(bench_cell(*lt, device, ceil, lt_layout, shape, m, opt, &cell));
      ++done;
      fmt::print("[{:3}/{}] {}", done, total, cell.md);
      std::fflush(stdout);
      cells.push_back(std::move(cell.j));
      md_rows += cell.md;
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

  const std::string stem = fmt::format("{}/gemm-{}-{}{}", opt.out_dir, date, file_safe(device.name),
                                       opt.tag.empty() ? "" : "-" + file_safe(opt.tag));
  std::ostringstream md;
  md << fmt::format("# fp8lm bench gemm — {} — {}\n\nSource: `{}`.\n\n", device.name, date, FP8LM_GIT_DESCRIBE)
     << fmt::format("Ceilings measured in this run: copy {:.0f} GB/s (bytes read + written), FP8 peak {:.0f} TFLOP/s "
                    "(cuBLASLt tensorwise FP8 with fast accumulation, {}x{}x{}). Floor = max(bytes / copy bandwidth, FLOPs / FP8 peak); "
                    "bytes = A + A scales + B + B scales + bf16 output.\n\n",
                    ceil.copy_gbps, ceil.fp8_tflops, kPeakM, kPeakN, kPeakK)
     << "Timing: CUDA-graph replay, median per launch, buffers rotated over more than 3x L2. cuBLASLt blockwise: "
        "VEC128 (activations) x BLK128x128 (weights) scales, "
     << (lt_layout ? lt_layout->describe() : "no layout matched the oracle") << ". bf16: cuBLASLt bf16 GEMM.\n\n"
     << "| model | layer | M | N | K | ours µs | TFLOP/s | GB/s | floor µs | % floor | config | cuBLASLt µs | "
        "cuBLASLt % floor | bf16 µs | vs cuBLASLt | vs bf16 |\n"
     << "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
     << md_rows;
  FP8LM_RETURN_IF_ERROR(write_result_files(opt.out_dir, stem, doc, md.str()));
  fmt::print("wrote {}.json and {}.md ({:.0f} s)\n", stem, stem, doc["seconds"].get<double>());
  return Status::Ok();
}

}  // namespace fp8lm::bench
