// `fp8lm selfcheck`: the kernels against their CPU twins on this machine, in seconds. Without a
// GPU it checks the CPU path (the twins against the fp64 oracle) and says so.
#include <fmt/format.h>

#include <ctime>
#include <vector>

#include "commands.h"
#include "fp8lm/cpu.h"
#include "fp8lm/device_buffer.h"
#include "fp8lm/gemm.h"
#include "fp8lm/oracle_check.h"
#include "fp8lm/quant.h"
#include "fp8lm/random.h"

namespace fp8lm::cli {

namespace {

struct Shape {
  int m, n, k;
};

// Compares a whole [m, n] output with the oracle on every row.
bool check_gemm(const char* what, const Shape& s, const HostGemmProblem& in, const std::vector<bf16>& out,
                const std::string& note, double accum_tol = kAccumTolFp32) {
  std::vector<double> ref(static_cast<std::size_t>(s.m) * s.n), abs_ref(ref.size());
  std::vector<int> rows(s.m);
  for (int r = 0; r < s.m; ++r) rows[r] = r;
  if (Status st = cpu::gemm_fp8_blockwise_oracle(in.args(nullptr), rows, ref.data(), abs_ref.data());
      !st.ok()) {
    fmt::print("  FAIL {} m={} n={} k={}: {}\n", what, s.m, s.n, s.k, st.message());
    return false;
  }
  const OracleCheck c = check_against_oracle(out, s.m, s.n, rows, ref.data(), abs_ref.data(), accum_tol);
  fmt::print("  {} {:<28} m={:<5} n={:<6} k={:<6} rel. error {:.2e} {}{}\n", c.ok() ? "ok  " : "FAIL", what, s.m, s.n,
             s.k, c.rel_frobenius, note, c.ok() ? "" : " — " + c.first_problem);
  return c.ok();
}

bool cpu_checks(Rng& rng) {
  fmt::print("CPU: GEMM twin (fp32, per-128-k promotion) against the fp64 oracle\n");
  bool ok = true;
  for (const Shape& s : {Shape{1, 1024, 1024}, Shape{3, 255, 272}, Shape{16, 2048, 1024}}) {
    const HostGemmProblem in = random_gemm_problem(s.m, s.n, s.k, rng);
    std::vector<bf16> out(static_cast<std::size_t>(s.m) * s.n, bf16{0x7FC0});
    if (Status st = cpu::gemm_fp8_blockwise(in.args(out.data())); !st.ok()) {
      fmt::print("  FAIL cpu gemm: {}\n", st.message());
      ok = false;
      continue;
    }
    ok &= check_gemm("cpu gemm", s, in, out, "");
  }
  return ok;
}

bool gpu_checks(Rng& rng, const DeviceInfo& device) {
  fmt::print("GPU {} (sm_{}): kernels against their CPU twins\n", device.name, device.sm_version());
  bool ok = true;
  {  // quantization: bit-exact
    const int m = 16, k = 4096;
    std::vector<bf16> x(static_cast<std::size_t>(m) * k);
    for (bf16& v : x) v = float_to_bf16(static_cast<float>(rng.normal() * 3.0));
    std::vector<fp8_e4m3> want(x.size());
    std::vector<float> want_scales(static_cast<std::size_t>(m) * (k / kQuantGroup));
    Status st = cpu::quantize_per_token_group({x.data(), want.data(), want_scales.data(), m, k});
    DeviceBuffer<bf16> dx(x);
    DeviceBuffer<fp8_e4m3> dq(x.size());
    DeviceBuffer<float> ds(want_scales.size());
    dq.fill_bytes(0xFF);
    ds.fill_bytes(0xFF);
    if (st.ok()) st = quantize_per_token_group({dx.get(), dq.get(), ds.get(), m, k}, nullptr);
    if (st.ok()) st = synchronize_device();
    bool same = st.ok();
    if (same) {
      const auto got = dq.download();
      const auto got_scales = ds.download();
      for (std::size_t i = 0; i < got.size(); ++i) same &= got[i].bits == want[i].bits;
      for (std::size_t i = 0; i < got_scales.size(); ++i) same &= got_scales[i] == want_scales[i];
    }
    fmt::print("  {} quantize_per_token_group     m={:<5} k={:<6} bit-exact with the CPU twin{}\n", same ? "ok  " : "FAIL",
               m, k, st.ok() ? "" : ": " + st.message());
    ok &= same;
  }
  for (const Shape& s : {Shape{1, 6144, 4096}, Shape{3, 255, 272}, Shape{16, 4096, 12288}, Shape{256, 1536, 2048}}) {
    const HostGemmProblem in = random_gemm_problem(s.m, s.n, s.k, rng);
    DeviceBuffer<fp8_e4m3> a(in.a), b(in.b);
    DeviceBuffer<float> sa(in.a_scales), sb(in.b_scales);
    DeviceBuffer<bf16> out(static_cast<std::size_t>(s.m) * s.n);
    out.fill_bytes(0xFF);
    Status st = gemm_fp8_blockwise({a.get(), sa.get(), b.get(), sb.get(), out.get(), s.m, s.n, s.k}, nullptr);
    if (st.ok()) st = synchronize_device();
    if (!st.ok()) {
      fmt::print("  FAIL gemm_fp8_blockwise m={} n={} k={}: {}\n", s.m, s.n, s.k, st.message());
      ok = false;
      continue;
    }
    const GemmConfig picked = pick_gemm_config(s.m, s.n, s.k, device);
    ok &= check_gemm("gemm_fp8_blockwise", s, in, out.download(), "(" + picked.name() + ")",
                     gemm_accumulation_tolerance(picked));
  }
  return ok;
}

}  // namespace

void add_selfcheck_command(CLI::App& app, int& exit_code) {
  CLI::App* cmd = app.add_subcommand("selfcheck", "Check the kernels against their CPU twins on this machine");
  cmd->callback([&exit_code] {
    Rng rng(static_cast<std::uint64_t>(std::time(nullptr)));  // fresh inputs every run
    bool ok = cpu_checks(rng);
    std::string why;
    if (!cuda_device_available(&why)) {
      fmt::print("GPU: none ({}); ran the CPU path only\n", why);
    } else {
      DeviceInfo device;
      Status st = current_device(&device);
      if (st.ok()) st = check_fp8_support(device);
      if (!st.ok()) {
        fmt::print("GPU: {}; ran the CPU path only\n", st.message());
      } else {
        ok &= gpu_checks(rng, device);
      }
    }
    fmt::print("selfcheck: {}\n", ok ? "all checks passed" : "FAILED");
    exit_code = ok ? 0 : 1;
  });
}

}  // namespace fp8lm::cli
