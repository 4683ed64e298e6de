// `fp8lm bench one-batch` on the tiny preset (CPU): the command runs, writes JSON + markdown named
// after the device and model, its numbers are consistent, its byte and FLOP counts match a hand
// computation from the tiny preset's dimensions, and lengths beyond the context fail before loading.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "checkpoint_test_util.h"

namespace fp8lm {
namespace {

using nlohmann::json;

// Runs fp8lm with `args`, stdout and stderr into files in `dir`; returns the exit status.
int run_fp8lm(const std::string& args, const testing::TempDir& dir) {
  const std::string command = std::string(FP8LM_BINARY) + " bench one-batch --tokenizer-dir " +
                              FP8LM_TOKENIZER_DATA_DIR "/qwen3 " + args + " > " + dir.file("stdout.txt") + " 2> " +
                              dir.file("stderr.txt");
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct ResultFiles {
  std::string json_path, md_path;
};

// Runs the command on `preset` (CPU) and finds the two result files it wrote under dir/results.
ResultFiles run_on_cpu(const std::string& preset, const std::string& lengths, const testing::TempDir& dir) {
  const int rc = run_fp8lm("--preset " + preset + " --load-format dummy --device cpu " + lengths + " --out " +
                               dir.file("results"),
                           dir);
  EXPECT_EQ(rc, 0) << read_text(dir.file("stderr.txt"));
  ResultFiles files;
  if (rc != 0) return files;
  for (const auto& entry : std::filesystem::directory_iterator(dir.file("results"))) {
    const std::string name = entry.path().filename().string();
    EXPECT_EQ(name.rfind("one-batch-", 0), 0u) << name;
    EXPECT_NE(name.find("-cpu-" + preset + "."), std::string::npos) << name;
    (entry.path().extension() == ".json" ? files.json_path : files.md_path) = entry.path().string();
  }
  return files;
}

// The tiny preset (engine/checkpoint/qwen3_presets.h), counted by hand.
constexpr double kHidden = 256, kIntermediate = 768, kLayers = 2, kQHeads = 4, kKvHeads = 2, kHeadDim = 128,
                 kVocab = 151936;
// Per layer [n, k]: qkv [(4 + 2 + 2) x 128, 256], o [256, 512], gate_up [1536, 256], down [256, 768].
constexpr double kLinearParams =
    kLayers * (1024 * kHidden + kHidden * 512 + 2 * kIntermediate * kHidden + kHidden * kIntermediate);
// fp32 128x128 block scales per layer: qkv 8x2, o 2x4, gate_up 12x2, down 2x6 = 60 blocks.
constexpr double kScaleBytes = kLayers * 60 * 4;
// BF16 norms: final + per layer (input, post-attention, q and k head norms).
constexpr double kNormBytes = 2 * (kHidden + kLayers * (2 * kHidden + 2 * kHeadDim));
// Tied: the embedding matrix is the lm_head; the step also reads one embedding row.
constexpr double kStepWeightBytes = kLinearParams + kScaleBytes + kNormBytes + 2 * kVocab * kHidden + 2 * kHidden;
constexpr double kKvBytesPerToken = 2 * kLayers * kKvHeads * kHeadDim * 2;

TEST(BenchOneBatch, TinyOnCpuWritesConsistentResults) {
  testing::TempDir dir;
  const ResultFiles files = run_on_cpu("tiny", "--input-len 1,7 --output-len 4", dir);
  ASSERT_FALSE(files.json_path.empty());
  ASSERT_FALSE(files.md_path.empty());

  const json doc = json::parse(read_text(files.json_path));
  EXPECT_EQ(doc["benchmark"], "one-batch");
  EXPECT_EQ(doc["device"], "cpu");
  EXPECT_TRUE(doc["gpu"].is_null());
  EXPECT_EQ(doc["model"], "tiny");
  EXPECT_FALSE(doc["source"].get<std::string>().empty());
  EXPECT_EQ(doc["output_len"], 4);
  // No GPU: no ceilings, no floor, no speed-of-light ratio (absent, not invented).
  EXPECT_TRUE(doc["copy_gbps"].is_null());
  EXPECT_TRUE(doc["fp8_peak_tflops"].is_null());
  EXPECT_EQ(doc["cost_model"]["weight_bytes_per_decode_step"].get<double>(), kStepWeightBytes);
  EXPECT_EQ(doc["cost_model"]["kv_bytes_per_token"].get<double>(), kKvBytesPerToken);
  EXPECT_EQ(doc["cost_model"]["active_linear_parameters"].get<double>(), kLinearParams);

  const json& results = doc["results"];
  ASSERT_EQ(results.size(), 2u);
  for (std::size_t i = 0; i < results.size(); ++i) {
    const json& r = results[i];
    const double in = i == 0 ? 1 : 7, out = 4, steps = 3;
    SCOPED_TRACE("input " + std::to_string(static_cast<int>(in)));
    EXPECT_EQ(r["input_tokens"].get<double>(), in);
    EXPECT_EQ(r["output_tokens"].get<double>(), out);
    EXPECT_EQ(r["decode_steps"].get<double>(), steps);
    const double total = r["total_s"], prefill = r["prefill_s"], decode = r["decode_s"];
    EXPECT_GT(prefill, 0);
    EXPECT_GT(decode, 0);
    EXPECT_NEAR(total, prefill + decode, 1e-12 * total);
    EXPECT_NEAR(r["tokens_per_s"].get<double>(), (in + out) / total, 1e-9 * (in + out) / total);
    EXPECT_NEAR(r["prefill_tokens_per_s"].get<double>(), in / prefill, 1e-9 * in / prefill);
    EXPECT_NEAR(r["itl_mean_ms"].get<double>(), 1e3 * decode / steps, 1e-9 * 1e3 * decode);
    EXPECT_LE(r["itl_p50_ms"].get<double>(), r["itl_p99_ms"].get<double>());
    EXPECT_GT(r["itl_p50_ms"].get<double>(), 0);

    // Decode step j (1..3) attends to in + j positions.
    const double kv_positions = 3 * in + 6;
    EXPECT_EQ(r["decode_weight_bytes"].get<double>(), steps * kStepWeightBytes);
    EXPECT_EQ(r["decode_kv_bytes"].get<double>(), kv_positions * kKvBytesPerToken);
    EXPECT_EQ(r["decode_bytes"].get<double>(), steps * kStepWeightBytes + kv_positions * kKvBytesPerToken);
    // Linears, causal attention (position p attends to p keys; QK^T and PV), last token's lm_head.
    const double flops = 2 * kLinearParams * in + 2 * 2 * kLayers * kQHeads * kHeadDim * (in * (in + 1) / 2) +
                         2 * kVocab * kHidden;
    EXPECT_EQ(r["prefill_flops"].get<double>(), flops);

    EXPECT_TRUE(r["floor"].is_null());
    EXPECT_TRUE(r["speed_of_light"].is_null());
    EXPECT_TRUE(r["seed_reference"].is_null());  // the seed has no tiny model
  }

  const std::string md = read_text(files.md_path);
  EXPECT_NE(md.find("| 1 | 4 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 7 | 4 |"), std::string::npos) << md;
  EXPECT_NE(md.find("no ceilings measured"), std::string::npos) << md;
}

// tiny-moe: tiny with 8 experts [2 x 256 | 256] per layer, 2 per token, and a bf16 router [8, 256].
TEST(BenchOneBatch, TinyMoeCountsTheRouterAndTheChosenExperts) {
  testing::TempDir dir;
  const ResultFiles files = run_on_cpu("tiny-moe", "--input-len 7 --output-len 2", dir);
  ASSERT_FALSE(files.json_path.empty());
  const json doc = json::parse(read_text(files.json_path));
  // Attention as in tiny; two experts: up [512, 256] (4x2 scale blocks) and down [256, 256] (2x2).
  constexpr double attention_params = kLayers * (1024 * kHidden + kHidden * 512);
  constexpr double expert_params = 512 * kHidden + kHidden * 256;
  constexpr double active_params = attention_params + kLayers * 2 * expert_params;
  constexpr double active_bytes = active_params + kLayers * 4 * (16 + 8 + 2 * (8 + 4));
  constexpr double router_params = kLayers * 8 * kHidden;
  EXPECT_EQ(doc["cost_model"]["active_linear_parameters"].get<double>(), active_params);
  EXPECT_EQ(doc["cost_model"]["router_parameters"].get<double>(), router_params);
  EXPECT_EQ(doc["cost_model"]["weight_bytes_per_decode_step"].get<double>(),
            active_bytes + 2 * router_params + kNormBytes + 2 * kVocab * kHidden + 2 * kHidden);
  ASSERT_EQ(doc["results"].size(), 1u);
  EXPECT_EQ(doc["results"][0]["prefill_flops"].get<double>(),
            2 * (active_params + router_params) * 7 + 2 * 2 * kLayers * kQHeads * kHeadDim * 28 + 2 * kVocab * kHidden);
}

// Runs `fp8lm bench one-batch ARGS --out <temp>/results`, expects it to fail with `message` on
// stderr and without result files; returns stderr.
std::string expect_one_batch_error(const std::string& args, const std::string& message) {
  testing::TempDir dir;
  const int rc = run_fp8lm(args + " --out " + dir.file("results"), dir);
  EXPECT_NE(rc, 0) << args;
  const std::string err = read_text(dir.file("stderr.txt"));
  EXPECT_NE(err.find(message), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("results"))) << args;
  return err;
}

TEST(BenchOneBatch, LengthsBeyondTheContextFailBeforeLoading) {
  const std::string err =
      expect_one_batch_error("--preset qwen3-32b --load-format dummy --device cpu --input-len 1,40000 --output-len 2048",
                             "input 40000 + output 2048 = 42048 tokens exceeds the model's context of 40960");
  EXPECT_EQ(err.find("made dummy"), std::string::npos) << "weights were made before the check: " << err;
}

// --kernel-trace: out of range before anything loads; on the CPU backend a clear error (CUPTI
// records GPU kernels) and no result files.
TEST(BenchOneBatch, KernelTraceChecksItsStepsAndNeedsCuda) {
  const std::string tiny = "--preset tiny --load-format dummy --device cpu --input-len 1 --output-len 4";
  expect_one_batch_error(tiny + " --kernel-trace 3", "--kernel-trace must be in 0 .. output_len - 2 = 2");
  expect_one_batch_error(tiny + " --kernel-trace 2", "--kernel-trace needs the CUDA backend");
}

// `fp8lm bench seed-table`: the seed's published numbers with their speed of light on their own
// cards. SEED-SUMMARY.md states SGLang on the H20 reaches about 31% of the floor for 8B and 9% for
// 0.6B at input 1; the table must reproduce that from the cost model and the datasheet ceilings.
TEST(SeedTable, ReproducesTheSeedSummarysRatios) {
  testing::TempDir dir;
  const std::string command = std::string(FP8LM_BINARY) + " bench seed-table --out " + dir.file("results") + " > " +
                              dir.file("stdout.txt") + " 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << read_text(dir.file("stdout.txt"));
  const json doc = json::parse(read_text(dir.file("results") + "/seed-reference-sol.json"));
  ASSERT_TRUE(std::filesystem::exists(dir.file("results") + "/seed-reference-sol.md"));
  int checked = 0;
  for (const json& row : doc["rows"]) {
    if (row["input_tokens"] != 1) continue;
    const double h20 = row["h20_sglang_speed_of_light"].get<double>();
    if (row["model"] == "qwen3-8b") {
      EXPECT_NEAR(h20, 0.31, 0.02);
      ++checked;
    }
    if (row["model"] == "qwen3-0.6b") {
      EXPECT_NEAR(h20, 0.09, 0.015);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 2);
  // The seed's L40S 32B run failed at input 30720: no number, no ratio.
  for (const json& row : doc["rows"]) {
    if (row["model"] == "qwen3-32b" && row["input_tokens"] == 30720) {
      EXPECT_TRUE(row["l40s_seed_kernel_speed_of_light"].is_null());
    }
  }
}

}  // namespace
}  // namespace fp8lm
