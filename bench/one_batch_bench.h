// `fp8lm bench one-batch`: the seed's protocol (shared/seed/SEED-SUMMARY.md, copied from the official
// Qwen3 speed benchmark). Batch 1; for each input length a prompt of that many pseudo-random
// ordinary token ids is prefilled, then greedy decoding runs until `output_len` tokens are generated
// (end ids ignored). Reports per input length tokens/s ((in + out) / total time), prefill time,
// inter-token latency (mean, p50, p99) and, on a GPU, the speed-of-light ratio: a floor built from
// the card's ceilings measured in the same run (DESIGN.md "Measuring") over the measured time.
// Writes JSON + markdown under bench/results/.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/ceilings.h"
#include "engine/model/qwen3_config.h"
#include "engine/model/qwen3_model.h"
#include "fp8lm/status.h"

namespace fp8lm::bench {

struct OneBatchOptions {
  std::vector<int> input_lens = {1, 6144, 14336, 30720};
  int output_len = 2048;  // generated tokens: the first comes from the prefill, the rest from decode steps
  std::string out_dir = "bench/results";
  std::string tag;  // appended to the result file names
  // > 0: the first input length's prefill and its first profile_steps decode steps run between
  // cudaProfilerStart and cudaProfilerStop, for `ncu --profile-from-start off` (that run's times
  // are then the profiler's, not the engine's). CUDA only.
  int profile_steps = 0;
  // > 0: that many decode steps of the first input length (from its second step on: the first
  // may record the decode graph) run under a CUPTI kernel trace (bench/kernel_trace.h); each
  // kernel's share of a step is written to kernel-trace-<date>-<card>-<model>-input<N>.{json,md}.
  // CUDA only.
  int kernel_trace_steps = 0;
};

// The floor's cost model, counted from the config (engine/model/qwen3_footprint.h).
// One decode step reads every FP8 linear the token passes through (codes + fp32 block scales; MoE:
// the bf16 router and the top-k experts of each MoE layer), every norm weight, the bf16 lm_head
// (tied: the embedding matrix) and one embedding row, plus the K and V of every cached position it
// attends to.
std::uint64_t decode_step_weight_bytes(const Qwen3Config& config);
// Bytes of K and V that the decode steps of one run read in all: the step that generates token
// j (j = 1 .. output_len - 1) attends to input_len + j positions.
std::uint64_t decode_kv_bytes(const Qwen3Config& config, std::int64_t input_len, std::int64_t output_len);
// Prefill FLOPs: 2 x (active linear + router parameters) x tokens, causal attention (QK^T and PV:
// 2 x 2 x layers x q heads x head_dim x the sum over positions of the context length) and the
// lm_head of the last token.
double prefill_flops(const Qwen3Config& config, std::int64_t tokens);

// The protocol's floor on a card with this copy bandwidth (bytes read + written per second, GB/s)
// and FP8 peak: max(prefill FLOPs / peak, weight bytes / bandwidth) for the prefill, plus
// (weight bytes + KV bytes read) / bandwidth for each of the output_len - 1 decode steps.
struct ProtocolFloor {
  double prefill_s = 0, decode_s = 0;
  double total_s() const { return prefill_s + decode_s; }
};
ProtocolFloor protocol_floor(const Qwen3Config& config, int input_len, int output_len, double bandwidth_gbps,
                             double fp8_tflops);

// The seed's published numbers (H20 SGLang, L40S SGLang with Triton and with the seed's kernel)
// with each engine's speed-of-light ratio on its own card, from the same cost model and the
// cards' datasheet ceilings: JSON + markdown `seed-reference-sol.{json,md}` in out_dir.
Status write_seed_table(const std::string& out_dir);

// The KV cache the protocol needs (the largest input + output_len) in *context_needed, or an error
// naming the lengths and the model's context when it does not fit, or when an option is out of range.
Status check_one_batch_options(const OneBatchOptions& options, const Qwen3Config& config, int* context_needed);

// The preset with `config`'s architecture ("qwen3-8b", "tiny"), or "" when none has it.
std::string matching_preset(const Qwen3Config& config);

struct OneBatchTarget {
  std::string model_name;   // file names and the seed's reference rows: the matching preset or the folder
  std::string description;  // "qwen3-8b (dummy weights) on cuda: NVIDIA H200 (sm_90)"
  std::string gpu;          // the GPU's name (nvidia-smi's), empty on the CPU
};

// Runs the protocol on `model` (reset before each input length; its context must hold the longest
// run). `ceilings` come with a GPU: without them no floor is computed and the SoL ratio is absent.
Status run_one_batch_bench(Qwen3Model& model, const OneBatchTarget& target, const OneBatchOptions& options,
                           const std::optional<Ceilings>& ceilings);

}  // namespace fp8lm::bench
