#include "bench/one_batch_bench.h"

#include <cuda_profiler_api.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/kernel_trace.h"
#include "bench/result_files.h"
#include "common/knobs.h"
#include "common/pdl.cuh"
#include "fp8lm/cuda_status.h"
#include "engine/model/qwen3_footprint.h"
#include "engine/checkpoint/qwen3_presets.h"
#include "fp8lm/numerics.h"
#include "fp8lm/random.h"
#include "fp8lm_source_revision.h"  // generated at build time (bench/CMakeLists.txt)

namespace fp8lm::bench {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// Prompt ids are the same for every run (and every length shares a prefix): a fixed seed.
constexpr std::uint64_t kPromptSeed = 0x5eed;
// An untimed warm-up run of this many prompt and generated tokens comes first, so that one-time
// costs (lazy CUDA module loading, library handles, first-touch of buffers) are not measured.
constexpr int kWarmupInput = 16, kWarmupOutput = 4;
// Decode progress goes to stdout this often (a 32B run at 30k input decodes for minutes).
constexpr double kProgressSeconds = 5.0;

constexpr const char* kNoCeilingsNote = "no GPU: no ceilings measured, so no floor and no speed-of-light ratio";

// The seed's published numbers (tokens/s; ITL in ms), for comparison only: blog post "Optimising
// Qwen3-FP8 on the L40S: +18%" (shared/seed/000_7ba6f2c5d06515a3.txt, section 4; summary in
// shared/seed/SEED-SUMMARY.md). H20: the official Qwen3 speed benchmark (SGLang), which gives no ITL.
// L40S: SGLang with its Triton blockwise FP8 GEMM and with the post's CUDA kernel. NaN: FAIL.
struct SeedRow {
  const char* model;
  int input_len;
  double h20_tokens_per_s, l40s_triton_tokens_per_s, l40s_seed_kernel_tokens_per_s;
  double l40s_triton_itl_ms, l40s_seed_kernel_itl_ms;
};
constexpr double kFail = NAN;
constexpr SeedRow kSeedRows[] = {
    {"qwen3-0.6b", 1, 458.03, 250.36, 303.09, 3.98, 3.28},
    {"qwen3-0.6b", 6144, 1572.95, 805.75, 936.57, 4.94, 4.24},
    {"qwen3-0.6b", 14336, 2689.08, 1270.00, 1427.09, 6.26, 5.57},
    {"qwen3-0.6b", 30720, 3819.86, 1773.35, 1918.70, 8.97, 8.28},
    {"qwen3-1.7b", 1, 333.90, 148.35, 197.24, 6.73, 5.05},
    {"qwen3-1.7b", 6144, 1198.20, 518.43, 661.93, 7.69, 6.01},
    {"qwen3-1.7b", 14336, 2095.61, 877.28, 1071.52, 9.08, 7.43},
    {"qwen3-1.7b", 30720, 3165.32, 1356.38, 1576.85, 11.74, 10.07},
    {"qwen3-4b", 1, 200.61, 75.19, 103.18, 13.28, 9.67},
    {"qwen3-4b", 6144, 662.26, 278.90, 370.24, 14.31, 10.76},
    {"qwen3-4b", 14336, 1066.23, 498.17, 638.03, 16.02, 12.50},
    {"qwen3-4b", 30720, 1467.71, 821.34, 1002.76, 19.42, 15.90},
    {"qwen3-8b", 1, 150.25, 53.47, 66.56, 18.69, 15.00},
    {"qwen3-8b", 6144, 516.64, 202.20, 248.00, 19.75, 16.10},
    {"qwen3-8b", 14336, 859.92, 371.91, 447.97, 21.47, 17.82},
    {"qwen3-8b", 30720, 1242.24, 641.60, 751.65, 24.88, 21.23},
    {"qwen3-14b", 1, 97.11, 34.20, 39.30, 29.22, 25.46},
    {"qwen3-14b", 6144, 342.95, 130.36, 148.56, 30.65, 26.89},
    {"qwen3-14b", 14336, 587.33, 246.01, 278.15, 32.48, 28.72},
    {"qwen3-14b", 30720, 880.72, 441.62, 492.80, 36.17, 32.40},
    {"qwen3-32b", 1, 46.17, 15.95, 18.31, 62.70, 54.59},
    {"qwen3-32b", 6144, 165.71, 61.36, 70.13, 65.14, 56.98},
    {"qwen3-32b", 14336, 287.60, 117.39, 133.28, 68.09, 59.96},
    {"qwen3-32b", 30720, 436.59, kFail, kFail, kFail, kFail},
    {"qwen3-30b-a3b", 1, 155.55, 102.83, 117.38, 9.70, 8.49},
    {"qwen3-30b-a3b", 6144, 551.34, 377.75, 426.18, 10.54, 9.34},
    {"qwen3-30b-a3b", 14336, 945.13, 680.58, 757.84, 11.70, 10.50},
    {"qwen3-30b-a3b", 30720, 1405.91, 1133.15, 1238.20, 14.05, 12.85},
};
constexpr const char* kSeedSource =
    "seed blog post 'Optimising Qwen3-FP8 on the L40S: +18%' (shared/seed/000_7ba6f2c5d06515a3.txt, section 4): "
    "H20 = official Qwen3 speed benchmark (SGLang); L40S = SGLang with its Triton FP8 GEMM and with the post's "
    "CUDA kernel. Other cards and engines: not comparable with this run's numbers.";

// The seed measured 2048 generated tokens; other output lengths have no reference.
constexpr int kSeedOutputLen = 2048;

const SeedRow* seed_row(const std::string& model, int input_len, int output_len) {
  if (output_len != kSeedOutputLen) return nullptr;
  for (const SeedRow& r : kSeedRows)
    if (model == r.model && input_len == r.input_len) return &r;
  return nullptr;
}

// NaN (a failed or absent measurement) becomes JSON null.
json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// Pseudo-random ordinary ids: below the first special token (<|endoftext|>, the bos id), as
// tests/reference/qwen3_reference.py draws its random prompts.
std::vector<std::int32_t> make_prompt(const Qwen3Config& config, int length) {
  const std::uint64_t ordinary = static_cast<std::uint64_t>(std::min(config.vocab_size, config.bos_token_id));
  Rng rng(kPromptSeed);
  std::vector<std::int32_t> ids(length);
  for (std::int32_t& id : ids) id = static_cast<std::int32_t>(rng.next() % ordinary);
  return ids;
}

// FP8LM_DEVICE_GREEDY, read once: the decode's tokens chosen on the backend (the default).
bool device_greedy() {
  static const bool on = knob_value(kDeviceGreedyKnob) == 1;
  return on;
}

std::int32_t argmax(const std::vector<float>& logits) {
  return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// Nearest-rank percentile of sorted values.
double percentile(const std::vector<double>& sorted, double p) {
  const std::size_t rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct RunTimes {
  double prefill_s = 0;
  std::vector<double> step_s;  // one per decode step
};

// Prefill, then output_len - 1 greedy decode steps: the prefill's token chosen here from its
// logits, the decode's on the backend a step ahead of the host (Qwen3Model::generate_greedy), or,
// with FP8LM_DEVICE_GREEDY=0, from logits copied to the host each step. A step's time is from the
// previous token's arrival on the host to its own, so they sum to the decode's wall time; the
// backend is synchronized before the clock starts so no earlier work is counted. Progress lines go
// to stdout when `report`. With profile_steps > 0 the prefill and that many decode steps run
// inside the CUDA profiler's range; with trace_steps > 0, decode steps 2 .. trace_steps + 1 run
// under the kernel tracer, their kernels in *traces (one vector per step). Those steps run one
// call each, so the next is not enqueued ahead of them.
Status run_protocol(Qwen3Model& model, int input_len, int output_len, bool report, RunTimes* times,
                    int profile_steps = 0, int trace_steps = 0,
                    std::vector<std::vector<TracedKernel>>* traces = nullptr) {
  model.reset();
  const std::vector<std::int32_t> prompt = make_prompt(model.config(), input_len);
  std::vector<float> logits;
  FP8LM_RETURN_IF_ERROR(model.backend().synchronize());
  // Closed after profile_steps decode steps, or on any return before (no steps, an error).
  struct ProfilerRange {
    bool open = false;
    ~ProfilerRange() {
      if (open) cudaProfilerStop();
    }
  } range;
  if (profile_steps > 0) {
    FP8LM_CUDA_RETURN_IF_ERROR(cudaProfilerStart());
    range.open = true;
  }
  const Clock::time_point prefill_start = Clock::now();
  FP8LM_RETURN_IF_ERROR(model.forward(prompt, /*all_logits=*/false, &logits));
  std::int32_t token = argmax(logits);
  times->prefill_s = seconds_since(prefill_start);
  if (report) {
    fmt::print("  input {}: prefill {:.3f} s ({:.0f} tokens/s)\n", input_len, times->prefill_s,
               input_len / times->prefill_s);
    std::fflush(stdout);
  }

  const int steps = output_len - 1;
  times->step_s.clear();
  times->step_s.reserve(steps);
  Clock::time_point last = Clock::now(), last_progress = last;
  double decode_s = 0;
  // A decode step's token has arrived on the host.
  const auto arrived = [&](std::int32_t id) {
    const Clock::time_point now = Clock::now();
    times->step_s.push_back(std::chrono::duration<double>(now - last).count());
    decode_s += times->step_s.back();
    last = now;
    token = id;
    const int step = static_cast<int>(times->step_s.size());
    if (report && seconds_since(last_progress) >= kProgressSeconds) {
      fmt::print("  input {}: decode step {}/{}, mean ITL so far {:.2f} ms\n", input_len, step, steps,
                 1e3 * decode_s / step);
      std::fflush(stdout);
      last_progress = Clock::now();
    }
    return true;
  };
  // `count` steps from `token`.
  const auto decode = [&](int count) -> Status {
    if (device_greedy()) return model.generate_greedy(token, count, arrived);
    for (int i = 0; i < count; ++i) {
      FP8LM_RETURN_IF_ERROR(model.forward(std::span<const std::int32_t>(&token, 1), false, &logits));
      arrived(argmax(logits));
    }
    return Status::Ok();
  };
  while (static_cast<int>(times->step_s.size()) < steps) {
    const int step = static_cast<int>(times->step_s.size()) + 1;
    const bool traced = step >= 2 && step < 2 + trace_steps;
    // Step 1 alone too when tracing: run ahead, it would enqueue step 2 before the tracer starts.
    const bool alone = traced || range.open || (step == 1 && trace_steps > 0);
    if (traced) FP8LM_RETURN_IF_ERROR(KernelTracer::begin());
    last = Clock::now();
    const Status ran = decode(alone ? 1 : steps - step + 1);
    if (traced) {
      std::vector<TracedKernel> kernels;
      const Status ended = KernelTracer::end(&kernels);
      FP8LM_RETURN_IF_ERROR(ran);
      FP8LM_RETURN_IF_ERROR(ended);
      traces->push_back(std::move(kernels));
    }
    FP8LM_RETURN_IF_ERROR(ran);
    if (range.open && static_cast<int>(times->step_s.size()) >= profile_steps) {
      range.open = false;
      FP8LM_CUDA_RETURN_IF_ERROR(cudaProfilerStop());
    }
  }
  return Status::Ok();
}

struct LengthResult {
  json j;
  std::string md;
};

LengthResult summarize(const Qwen3Config& config, const OneBatchTarget& target, const std::optional<Ceilings>& ceilings,
                       int input_len, int output_len, const RunTimes& times) {
  std::vector<double> sorted = times.step_s;
  std::sort(sorted.begin(), sorted.end());
  double decode_s = 0;
  for (double s : times.step_s) decode_s += s;
  const double total_s = times.prefill_s + decode_s;
  const int steps = static_cast<int>(times.step_s.size());
  const double itl_mean_ms = 1e3 * decode_s / steps;
  const double tokens_per_s = (input_len + output_len) / total_s;

  const double flops = prefill_flops(config, input_len);
  const std::uint64_t step_weight_bytes = decode_step_weight_bytes(config);
  const std::uint64_t kv_bytes = decode_kv_bytes(config, input_len, output_len);
  const double decode_bytes = static_cast<double>(step_weight_bytes) * steps + static_cast<double>(kv_bytes);
  json j = {{"input_tokens", input_len},
            {"output_tokens", output_len},
            {"decode_steps", steps},
            {"total_s", total_s},
            {"tokens_per_s", tokens_per_s},
            {"prefill_s", times.prefill_s},
            {"prefill_tokens_per_s", input_len / times.prefill_s},
            {"decode_s", decode_s},
            {"itl_mean_ms", itl_mean_ms},
            {"itl_p50_ms", 1e3 * percentile(sorted, 0.50)},
            {"itl_p99_ms", 1e3 * percentile(sorted, 0.99)},
            {"prefill_flops", flops},
            {"decode_weight_bytes", static_cast<double>(step_weight_bytes) * steps},
            {"decode_kv_bytes", static_cast<double>(kv_bytes)},
            {"decode_bytes", decode_bytes}};

  double sol = NAN, prefill_pct_peak = NAN, itl_floor_ms = NAN, floor_s = NAN;
  if (ceilings) {
    const double peak_flops = ceilings->fp8_tflops * 1e12;
    const ProtocolFloor floor = protocol_floor(config, input_len, output_len, ceilings->copy_gbps, ceilings->fp8_tflops);
    const double prefill_floor_s = floor.prefill_s, decode_floor_s = floor.decode_s;
    floor_s = floor.total_s();
    sol = floor_s / total_s;
    prefill_pct_peak = 100.0 * flops / times.prefill_s / peak_flops;
    itl_floor_ms = 1e3 * decode_floor_s / steps;
    j["floor"] = {{"prefill_s", prefill_floor_s}, {"decode_s", decode_floor_s}, {"total_s", floor_s},
                  {"itl_mean_ms", itl_floor_ms}};
    j["speed_of_light"] = sol;
    j["prefill_speed_of_light"] = prefill_floor_s / times.prefill_s;
    j["decode_speed_of_light"] = decode_floor_s / decode_s;
    j["prefill_pct_of_fp8_peak"] = prefill_pct_peak;
  } else {
    j["floor"] = nullptr;
    j["speed_of_light"] = nullptr;
  }

  const SeedRow* seed = seed_row(target.model_name, input_len, output_len);
  if (seed)
    j["seed_reference"] = {{"h20_sglang_tokens_per_s", number_or_null(seed->h20_tokens_per_s)},
                           {"l40s_sglang_triton_tokens_per_s", number_or_null(seed->l40s_triton_tokens_per_s)},
                           {"l40s_sglang_seed_kernel_tokens_per_s",
                            number_or_null(seed->l40s_seed_kernel_tokens_per_s)},
                           {"l40s_sglang_triton_itl_ms", number_or_null(seed->l40s_triton_itl_ms)},
                           {"l40s_sglang_seed_kernel_itl_ms", number_or_null(seed->l40s_seed_kernel_itl_ms)}};
  else
    j["seed_reference"] = nullptr;

  // Without a seed row every reference cell is "–".
  const SeedRow no_seed{"", input_len, NAN, NAN, NAN, NAN, NAN};
  const SeedRow& ref = seed ? *seed : no_seed;
  LengthResult r;
  r.md = fmt::format(
      "| {} | {} | {:.2f} | {:.3f} | {:.0f} | {:.2f} | {:.2f} | {:.2f} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
      input_len, output_len, tokens_per_s, times.prefill_s, input_len / times.prefill_s, itl_mean_ms,
      1e3 * percentile(sorted, 0.50), 1e3 * percentile(sorted, 0.99), markdown_cell(floor_s, "{:.3f}"),
      markdown_cell(sol, "{:.3f}"), markdown_cell(prefill_pct_peak, "{:.0f}%"), markdown_cell(itl_floor_ms, "{:.2f}"),
      markdown_cell(ref.h20_tokens_per_s, "{:.2f}"), markdown_cell(ref.l40s_triton_tokens_per_s, "{:.2f}"),
      markdown_cell(ref.l40s_seed_kernel_tokens_per_s, "{:.2f}"), markdown_cell(ref.l40s_seed_kernel_itl_ms, "{:.2f}"));
  r.j = std::move(j);
  return r;
}

}  // namespace

std::uint64_t decode_step_weight_bytes(const Qwen3Config& config) {
  const Qwen3Footprint f = qwen3_footprint(config);
  const std::uint64_t embedding_row = static_cast<std::uint64_t>(config.hidden_size) * sizeof(bf16);
  return f.active_linear_bytes + f.router_parameters * sizeof(bf16) + f.norm_bytes + f.embedding_bytes + embedding_row;
}

std::uint64_t decode_kv_bytes(const Qwen3Config& config, std::int64_t input_len, std::int64_t output_len) {
  const std::uint64_t steps = static_cast<std::uint64_t>(output_len - 1);
  // sum over j = 1 .. steps of (input_len + j)
  const std::uint64_t positions = steps * static_cast<std::uint64_t>(input_len) + steps * (steps + 1) / 2;
  return qwen3_footprint(config).kv_bytes_per_token * positions;
}

ProtocolFloor protocol_floor(const Qwen3Config& config, int input_len, int output_len, double bandwidth_gbps,
                            double fp8_tflops) {
  const double bandwidth = bandwidth_gbps * 1e9;
  const double step_weight_bytes = static_cast<double>(decode_step_weight_bytes(config));
  ProtocolFloor f;
  // The prefill also reads every weight once: at input 1 its FLOP time alone would be ~0.
  f.prefill_s = std::max(prefill_flops(config, input_len) / (fp8_tflops * 1e12), step_weight_bytes / bandwidth);
  f.decode_s = (step_weight_bytes * (output_len - 1) +
                static_cast<double>(decode_kv_bytes(config, input_len, output_len))) / bandwidth;
  return f;
}

double prefill_flops(const Qwen3Config& config, std::int64_t tokens) {
  const double n = static_cast<double>(tokens);
  const Qwen3Footprint f = qwen3_footprint(config);
  const double linears = 2.0 * static_cast<double>(f.active_linear_parameters + f.router_parameters) * n;
  // Position p (1-based) attends to p keys: QK^T and PV each take 2 x head_dim FLOPs per key and head.
  const double attention = 2.0 * 2.0 * config.num_hidden_layers * config.num_attention_heads * config.head_dim *
                           (n * (n + 1) / 2);
  const double lm_head = 2.0 * static_cast<double>(config.vocab_size) * config.hidden_size;
  return linears + attention + lm_head;
}

Status check_one_batch_options(const OneBatchOptions& opt, const Qwen3Config& config, int* context_needed) {
  if (opt.input_lens.empty()) return Status::Error("--input-len needs at least one length");
  for (int len : opt.input_lens)
    if (len < 1) return Status::Error(fmt::format("--input-len values must be >= 1 (got {})", len));
  if (opt.output_len < 2)
    return Status::Error(fmt::format(
        "--output-len must be >= 2 (the prefill makes the first token; decode steps are timed "
        "from the second), got {}",
        opt.output_len));
  const int longest = *std::max_element(opt.input_lens.begin(), opt.input_lens.end());
  const std::int64_t needed = static_cast<std::int64_t>(longest) + opt.output_len;
  if (needed > config.max_position_embeddings)
    return Status::Error(fmt::format(
        "input {} + output {} = {} tokens exceeds the model's context of {} tokens", longest,
        opt.output_len, needed, config.max_position_embeddings));
  if (opt.profile_steps < 0)
    return Status::Error(fmt::format("--profile-steps must be >= 0 (got {})", opt.profile_steps));
  if (opt.kernel_trace_steps < 0 || opt.kernel_trace_steps > opt.output_len - 2)
    return Status::Error(fmt::format("--kernel-trace must be in 0 .. output_len - 2 = {} (decode steps from the "
                                     "second on), got {}",
                                     opt.output_len - 2, opt.kernel_trace_steps));
  *context_needed = static_cast<int>(needed);
  return Status::Ok();
}

std::string matching_preset(const Qwen3Config& c) {
  for (const std::string& name : qwen3_preset_names()) {
    Qwen3Config p;
    if (!qwen3_preset(name, &p).ok()) continue;
    if (p.model_type == c.model_type && p.vocab_size == c.vocab_size && p.hidden_size == c.hidden_size &&
        p.intermediate_size == c.intermediate_size && p.num_hidden_layers == c.num_hidden_layers &&
        p.num_attention_heads == c.num_attention_heads && p.num_key_value_heads == c.num_key_value_heads &&
        p.head_dim == c.head_dim && p.tie_word_embeddings == c.tie_word_embeddings &&
        p.num_experts == c.num_experts && p.moe_intermediate_size == c.moe_intermediate_size)
      return name;
  }
  return "";
}

// The kernel trace of the traced decode steps (run_protocol): per kernel name, launches, busy and
// added time per step (kernel_trace.h), largest added first, and the first traced step's kernels
// in order; printed (the top 12) and written as kernel-trace-...{json,md}.
Status write_kernel_trace(const OneBatchOptions& opt, const OneBatchTarget& target, const std::string& card,
                          int input_len, const std::vector<std::vector<TracedKernel>>& traces, const RunTimes& times) {
  std::vector<KernelShare> shares;
  double span_us = 0, idle_us = 0, host_us = 0;
  int kernels = 0;
  for (std::size_t i = 0; i < traces.size(); ++i) {
    const StepSummary s = summarize_step(traces[i], &shares);
    span_us += s.span_us, idle_us += s.idle_us, kernels += s.kernels;
    host_us += 1e6 * times.step_s[1 + i];  // traces[i] is decode step i + 2
  }
  const double steps = static_cast<double>(traces.size());
  std::sort(shares.begin(), shares.end(), [](const KernelShare& a, const KernelShare& b) { return a.added_us > b.added_us; });
  fmt::print("  kernel trace, input {}, {} decode steps: {:.0f} kernels, GPU span {:.1f} us (idle {:.1f} us), "
             "host step {:.1f} us, per step; largest shares (added / busy us per step, launches):\n",
             input_len, traces.size(), kernels / steps, span_us / steps, idle_us / steps, host_us / steps);
  std::ostringstream md;
  md << fmt::format("# Kernel trace: {}, input {}, {} decode steps\n\nSource: `{}`. CUPTI kernel records of decode "
                    "steps 2..{} (CUDA graph replay, programmatic dependent launch as in a run). Per step: {:.0f} "
                    "kernels, GPU span {:.1f} us (first start to last end), idle {:.1f} us, host-timed step {:.1f} "
                    "us. added = how far a kernel moves the step's end past the kernels that started before it "
                    "(the added times and the idle time sum to the span); busy = its own start to end.\n\n"
                    "| kernel | launches per step | added us per step | busy us per step |\n|---|---|---|---|\n",
                    target.description, input_len, traces.size(), FP8LM_GIT_DESCRIBE, traces.size() + 1,
                    kernels / steps, span_us / steps, idle_us / steps, host_us / steps);
  json shares_json = json::array();
  for (std::size_t i = 0; i < shares.size(); ++i) {
    const KernelShare& k = shares[i];
    if (i < 12)
      fmt::print("    {:8.1f} / {:8.1f}  x{:<4.0f} {}\n", k.added_us / steps, k.busy_us / steps, k.launches / steps,
                 k.name);
    md << fmt::format("| `{}` | {:.0f} | {:.1f} | {:.1f} |\n", k.name, k.launches / steps, k.added_us / steps,
                      k.busy_us / steps);
    shares_json.push_back({{"kernel", k.name}, {"launches_per_step", k.launches / steps},
                           {"added_us_per_step", k.added_us / steps}, {"busy_us_per_step", k.busy_us / steps}});
  }
  // The first traced step in order: start (from the step's first kernel), duration, added.
  md << "\n## Decode step 2, kernel by kernel\n\n| # | kernel | start us | duration us | added us |\n|---|---|---|---|---|\n";
  json timeline = json::array();
  const std::vector<TimedKernel> step = step_timeline(traces.front());
  for (std::size_t i = 0; i < step.size(); ++i) {
    const TracedKernel& k = step[i].kernel;
    const double start = 1e-3 * static_cast<double>(k.start_ns - step.front().kernel.start_ns);
    const double duration = 1e-3 * static_cast<double>(k.end_ns - k.start_ns);
    md << fmt::format("| {} | `{}` | {:.1f} | {:.1f} | {:.1f} |\n", i, k.name, start, duration, step[i].added_us);
    timeline.push_back(
        {{"kernel", k.name}, {"start_us", start}, {"duration_us", duration}, {"added_us", step[i].added_us}});
  }
  const json doc = {{"benchmark", "kernel-trace"},
                    {"date", utc_date()},
                    {"gpu", target.gpu},
                    {"source", FP8LM_GIT_DESCRIBE},
                    {"model", target.model_name},
                    {"description", target.description},
                    {"input_len", input_len},
                    {"traced_steps", traces.size()},
                    {"kernels_per_step", kernels / steps},
                    {"gpu_span_us_per_step", span_us / steps},
                    {"idle_us_per_step", idle_us / steps},
                    {"host_step_us", host_us / steps},
                    {"shares", shares_json},
                    {"first_step", timeline}};
  const std::string stem = fmt::format("{}/kernel-trace-{}-{}-{}-input{}{}", opt.out_dir, utc_date(), file_safe(card),
                                       file_safe(target.model_name), input_len,
                                       opt.tag.empty() ? "" : "-" + file_safe(opt.tag));
  return write_result_files(stem, doc, md.str());
}

Status run_one_batch_bench(Qwen3Model& model, const OneBatchTarget& target, const OneBatchOptions& opt,
                           const std::optional<Ceilings>& ceilings) {
  const Qwen3Config& config = model.config();
  int context_needed = 0;
  FP8LM_RETURN_IF_ERROR(check_one_batch_options(opt, config, &context_needed));
  if (context_needed > model.max_context())
    return Status::Error(fmt::format("the model's KV cache holds {} tokens, the runs need {}",
                                     model.max_context(), context_needed));
  const std::string card = target.gpu.empty() ? "cpu" : target.gpu;
  if (opt.profile_steps > 0 && target.gpu.empty())
    return Status::Error("--profile-steps needs the CUDA backend (it marks a range for the CUDA profiler)");
  if (opt.kernel_trace_steps > 0 && target.gpu.empty())
    return Status::Error("--kernel-trace needs the CUDA backend (it records GPU kernels through CUPTI)");
  fmt::print("bench one-batch: {}, output {} tokens, inputs", target.description, opt.output_len);
  for (int len : opt.input_lens) fmt::print(" {}", len);
  fmt::print("\n");
  if (ceilings)
    fmt::print("ceilings: copy {:.0f} GB/s (read + write), FP8 tensorwise cuBLASLt {:.0f} TFLOP/s\n",
               ceilings->copy_gbps, ceilings->fp8_tflops);
  else
    fmt::print("{}\n", kNoCeilingsNote);

  const Clock::time_point t0 = Clock::now();
  const bool pdl = !target.gpu.empty() && pdl_enabled();  // recorded: it changes the ITL (kernels/common/pdl.cuh)
  {
    const int longest = *std::max_element(opt.input_lens.begin(), opt.input_lens.end());
    RunTimes warmup;
    FP8LM_RETURN_IF_ERROR(run_protocol(model, std::min(kWarmupInput, longest), std::min(kWarmupOutput, opt.output_len),
                                       /*report=*/false, &warmup));
  }
  json results = json::array();
  std::string md_rows;
  for (int input_len : opt.input_lens) {
    RunTimes times;
    const bool first = input_len == opt.input_lens.front();
    std::vector<std::vector<TracedKernel>> traces;
    FP8LM_RETURN_IF_ERROR(run_protocol(model, input_len, opt.output_len, /*report=*/true, &times,
                                       first ? opt.profile_steps : 0, first ? opt.kernel_trace_steps : 0, &traces));
    if (!traces.empty())
      FP8LM_RETURN_IF_ERROR(write_kernel_trace(opt, target, card, input_len, traces, times));
    LengthResult r = summarize(config, target, ceilings, input_len, opt.output_len, times);
    fmt::print("  input {}: {:.2f} tokens/s, mean ITL {:.2f} ms, speed of light {}\n", input_len,
               r.j["tokens_per_s"].get<double>(), r.j["itl_mean_ms"].get<double>(),
               ceilings ? fmt::format("{:.3f}", r.j["speed_of_light"].get<double>()) : "– (no ceilings)");
    std::fflush(stdout);
    results.push_back(std::move(r.j));
    md_rows += r.md;
  }

  const std::string method = fmt::format(
      "Batch 1; an untimed warm-up run ({} prompt tokens, {} generated) first; prompt = pseudo-random ordinary "
      "token ids (seeded); prefill, then greedy decode steps until output_len tokens are generated (the first by "
      "the prefill; end ids ignored). The prefill returns logits on the host (argmax there); the decode steps pick "
      "their tokens on the backend, each step enqueued before the host waits for the previous one's token "
      "(FP8LM_DEVICE_GREEDY=0: logits to the host and argmax there every step); steady clock around the prefill "
      "and from token to token on the host, backend synchronized before. tokens/s = "
      "(input + output) / (prefill + decode time). Floor = max(prefill FLOPs / FP8 peak, weight bytes / copy "
      "bandwidth) + sum over decode steps of (weight bytes + KV bytes read) / copy bandwidth, ceilings measured in "
      "this run; speed of light = floor / measured time.",
      kWarmupInput, kWarmupOutput);
  const Qwen3Footprint footprint = qwen3_footprint(config);
  const std::string date = utc_date();
  // The kernels' A/B knobs (environment variables), recorded when set so a result names them.
  json knobs = json::object();
  for (const IntKnob& knob : kIntKnobs)
    if (const char* v = std::getenv(knob.name)) knobs[knob.name] = knob_record(knob, v);
  if (const char* v = std::getenv(kDecodeFusionKnob)) knobs[kDecodeFusionKnob] = v;  // decode_fusions: what ran
  std::string knobs_md;
  for (const auto& [name, value] : knobs.items()) knobs_md += fmt::format(" {}={}.", name, value.get<std::string>());
  json doc = {{"benchmark", "one-batch"},
              {"date", date},
              {"device", card},
              {"gpu", target.gpu.empty() ? json(nullptr) : json(target.gpu)},
              {"source", FP8LM_GIT_DESCRIBE},
              {"model", target.model_name},
              {"description", target.description},
              {"decode_graph", model.uses_decode_graph()},  // single-token forwards replay a CUDA graph
              {"programmatic_dependent_launch", pdl},
              {"device_greedy", device_greedy()},  // decode tokens chosen on the backend
              {"environment", knobs},
              {"decode_fusions", decode_fusion_names(decode_fusions())},  // as run (FP8LM_DECODE_FUSION parsed)
              {"method", method},
              {"output_len", opt.output_len},
              {"copy_gbps", ceilings ? json(ceilings->copy_gbps) : json(nullptr)},
              {"fp8_peak_tflops", ceilings ? json(ceilings->fp8_tflops) : json(nullptr)},
              {"cost_model",
               {{"active_linear_parameters", footprint.active_linear_parameters},
                {"active_linear_bytes", footprint.active_linear_bytes},
                {"router_parameters", footprint.router_parameters},
                {"norm_bytes", footprint.norm_bytes},
                {"lm_head_bytes", footprint.embedding_bytes},
                {"weight_bytes_per_decode_step", decode_step_weight_bytes(config)},
                {"kv_bytes_per_token", footprint.kv_bytes_per_token}}},
              {"seed_reference_source", kSeedSource},
              {"seconds", seconds_since(t0)},
              {"results", results}};
  if (!ceilings) doc["ceilings_note"] = kNoCeilingsNote;

  const std::string stem = fmt::format("{}/one-batch-{}-{}-{}{}", opt.out_dir, date, file_safe(card),
                                       file_safe(target.model_name), opt.tag.empty() ? "" : "-" + file_safe(opt.tag));
  std::ostringstream md;
  md << fmt::format("# fp8lm bench one-batch — {} — {} — {}\n\nSource: `{}`. {}.{}{}{}\n\n", target.model_name, card,
                    date, FP8LM_GIT_DESCRIBE, target.description,
                    target.gpu.empty() ? ""
                    : pdl ? " Kernels launched with programmatic dependent launch."
                          : " Kernels launched without programmatic dependent launch (FP8LM_PDL=0 or no sm_90).",
                    target.gpu.empty() ? "" : " Decode fusions: " + decode_fusion_names(decode_fusions()) + ".",
                    knobs_md.empty() ? "" : " Set in the environment:" + knobs_md)
     << (ceilings ? fmt::format("Ceilings measured in this run: copy {:.0f} GB/s (bytes read + written), FP8 peak "
                                "{:.0f} TFLOP/s (cuBLASLt tensorwise FP8, {}x{}x{}).\n\n",
                                ceilings->copy_gbps, ceilings->fp8_tflops, kPeakM, kPeakN, kPeakK)
                  : fmt::format("{}.\n\n", kNoCeilingsNote))
     << "Method: " << method << "\n\n"
     << fmt::format("Per decode step: {} weight bytes + {} KV bytes per cached position.\n\n",
                    decode_step_weight_bytes(config), footprint.kv_bytes_per_token)
     << "| input | output | tokens/s | prefill s | prefill tokens/s | ITL mean ms | ITL p50 ms | ITL p99 ms | floor s | "
        "speed of light | prefill % FP8 peak | ITL floor ms | H20 SGLang tokens/s (seed) | L40S SGLang Triton "
        "tokens/s (seed) | L40S seed kernel tokens/s (seed) | L40S seed kernel ITL ms (seed) |\n"
     << "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
     << md_rows << "\nReference columns (other cards and engines, not comparable with this run): " << kSeedSource
     << "\n";
  FP8LM_RETURN_IF_ERROR(write_result_files(stem, doc, md.str()));
  fmt::print("wrote {}.json and {}.md ({:.0f} s)\n", stem, stem, doc["seconds"].get<double>());
  return Status::Ok();
}

// The seed's cards, from NVIDIA's datasheets (dense FP8, no sparsity); the bandwidths are the ones
// the speed-of-light issue names. Datasheet bandwidth is higher than a measured copy bandwidth
// (the H100's 3.35 TB/s against the ~2.98 TB/s our bench measures), so these floors are shorter and
// the engines' ratios lower than they would be with the measured ceilings our own rows use.
struct SeedCard {
  const char* name;
  double bandwidth_gbps;
  double fp8_tflops;
};
constexpr SeedCard kH20{"H20", 4000, 296};
constexpr SeedCard kL40S{"L40S", 864, 733};

Status write_seed_table(const std::string& out_dir) {
  json rows = json::array();
  std::string md_rows;
  for (const SeedRow& r : kSeedRows) {
    Qwen3Config config;
    FP8LM_RETURN_IF_ERROR(qwen3_preset(r.model, &config));
    // speed of light = floor time / measured time, the measured time being (input + output) / tokens/s
    auto sol = [&](const SeedCard& card, double tokens_per_s) {
      const double floor_s =
          protocol_floor(config, r.input_len, kSeedOutputLen, card.bandwidth_gbps, card.fp8_tflops).total_s();
      return floor_s / ((r.input_len + kSeedOutputLen) / tokens_per_s);
    };
    const double h20 = sol(kH20, r.h20_tokens_per_s), triton = sol(kL40S, r.l40s_triton_tokens_per_s),
                 seed = sol(kL40S, r.l40s_seed_kernel_tokens_per_s);
    rows.push_back({{"model", r.model},
                    {"input_tokens", r.input_len},
                    {"output_tokens", kSeedOutputLen},
                    {"h20_sglang_tokens_per_s", number_or_null(r.h20_tokens_per_s)},
                    {"h20_sglang_speed_of_light", number_or_null(h20)},
                    {"l40s_sglang_triton_tokens_per_s", number_or_null(r.l40s_triton_tokens_per_s)},
                    {"l40s_sglang_triton_speed_of_light", number_or_null(triton)},
                    {"l40s_seed_kernel_tokens_per_s", number_or_null(r.l40s_seed_kernel_tokens_per_s)},
                    {"l40s_seed_kernel_speed_of_light", number_or_null(seed)}});
    md_rows += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} |\n", r.model, r.input_len,
                           markdown_cell(r.h20_tokens_per_s, "{:.2f}"), markdown_cell(h20, "{:.3f}"),
                           markdown_cell(r.l40s_triton_tokens_per_s, "{:.2f}"), markdown_cell(triton, "{:.3f}"),
                           markdown_cell(r.l40s_seed_kernel_tokens_per_s, "{:.2f}"), markdown_cell(seed, "{:.3f}"));
  }
  const std::string cards = fmt::format(
      "{}: {:.0f} GB/s, FP8 {:.0f} TFLOP/s; {}: {:.0f} GB/s, FP8 {:.0f} TFLOP/s (datasheets, dense FP8)", kH20.name,
      kH20.bandwidth_gbps, kH20.fp8_tflops, kL40S.name, kL40S.bandwidth_gbps, kL40S.fp8_tflops);
  const json doc = {{"benchmark", "seed-reference-sol"}, {"source", kSeedSource}, {"cards", cards},
                    {"output_len", kSeedOutputLen}, {"rows", rows}};
  const std::string stem = out_dir + "/seed-reference-sol";
  std::ostringstream md;
  md << "# The seed's published Qwen3-FP8 numbers and their speed of light on their own cards\n\n"
     << "Source: " << kSeedSource << "\n\nCards: " << cards
     << ". Speed of light = the protocol's floor on that card (fp8lm's cost model, bench/one_batch_bench.h) / the "
        "engine's time ((input + 2048) / tokens/s). Datasheet bandwidths exceed what a copy achieves, so these "
        "ratios are somewhat lower than with measured ceilings.\n\n"
     << "| model | input | H20 SGLang tokens/s | SoL on H20 | L40S SGLang Triton tokens/s | SoL on L40S | L40S seed "
        "kernel tokens/s | SoL on L40S |\n|---|---|---|---|---|---|---|---|\n"
     << md_rows;
  FP8LM_RETURN_IF_ERROR(write_result_files(stem, doc, md.str()));
  fmt::print("wrote {}.json and {}.md\n", stem, stem);
  return Status::Ok();
}

}  // namespace fp8lm::bench
