// The decode graph (ModelOptions::cuda_graphs) against the eager path on the CUDA backend: the same
// token sequence through two models that differ only in that option must give the same logits bit
// for bit at every step: the graph records exactly the eager ops, reading the token id and the
// position from device memory (layer_ops_gpu_test.cpp checks the ops that read the position).
// Covered: the tiny and tiny-moe presets and a 3-layer model of Qwen3-0.6B's shape; prefill in one chunk and
// in several (max_batch_tokens) followed by decode steps; contexts past 1024 tokens, where decode
// attention splits its keys (the graph's launch is sized for the whole context, the eager one for
// the current length); truncate() to a prefix and decoding again (the position comes from
// length()); decode steps that cross KV page boundaries (kKvPageSize), where forward() appends a
// page and uploads the block table outside the graph before the replay, also after truncate()
// released that page; tiny-moe (its layers plan the experts on the device). Passed on an H100 and
// (with the paged cache and the MoE graph) on an H200, 2026-11-28.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/checkpoint/dummy_weights.h"
#include "engine/model/qwen3_model.h"
#include "few_layer_model.h"
#include "greedy_run.h"

namespace fp8lm {
namespace {

struct Script {
  int prompt_tokens;
  int decode_steps;
  int truncate_to;  // then decode_steps more
  int max_batch_tokens;
};

std::vector<std::int32_t> ids(int count, int salt, int vocab) {
  std::vector<std::int32_t> v(count);
  for (int i = 0; i < count; ++i) v[i] = static_cast<std::int32_t>((i * 7919 + salt * 104729 + 13) % vocab);
  return v;
}

// The logits of every forward call of the script, in order.
std::vector<std::vector<float>> run_script(const Qwen3Weights& weights, const Script& script, bool graphs) {
  std::vector<std::vector<float>> all;
  std::unique_ptr<Backend> backend;
  EXPECT_TRUE(Backend::create(DeviceKind::kCuda, &backend).ok());
  if (!backend) return all;
  ModelOptions options;
  options.max_context = 4096;
  options.max_batch_tokens = script.max_batch_tokens;
  options.cuda_graphs = graphs;
  std::unique_ptr<Qwen3Model> model;
  const Status created = Qwen3Model::create(weights, *backend, options, &model);
  EXPECT_TRUE(created.ok()) << created.message();
  if (!model) return all;
  EXPECT_EQ(model->uses_decode_graph(), graphs);
  const int vocab = weights.config.vocab_size;
  auto step = [&](std::span<const std::int32_t> tokens) {
    std::vector<float> logits;
    const Status s = model->forward(tokens, false, &logits);
    EXPECT_TRUE(s.ok()) << s.message();
    all.push_back(std::move(logits));
  };
  step(ids(script.prompt_tokens, 1, vocab));
  const std::vector<std::int32_t> decode = ids(2 * script.decode_steps, 2, vocab);
  for (int i = 0; i < script.decode_steps; ++i) step(std::span(decode).subspan(i, 1));
  model->truncate(script.truncate_to);
  EXPECT_EQ(model->length(), script.truncate_to);
  for (int i = script.decode_steps; i < 2 * script.decode_steps; ++i) step(std::span(decode).subspan(i, 1));
  EXPECT_EQ(model->length(), script.truncate_to + script.decode_steps);
  EXPECT_EQ(static_cast<int>(model->kv_sequence().pages().size()), ceil_div(model->length(), kKvPageSize));
  return all;
}

void expect_graph_equals_eager(const Qwen3Weights& weights, const Script& script, const std::string& what) {
  const auto eager = run_script(weights, script, false), graph = run_script(weights, script, true);
  ASSERT_EQ(eager.size(), graph.size()) << what;
  for (std::size_t call = 0; call < eager.size(); ++call) {
    ASSERT_EQ(eager[call].size(), graph[call].size()) << what << " call " << call;
    for (std::size_t v = 0; v < eager[call].size(); ++v)
      ASSERT_EQ(std::memcmp(&eager[call][v], &graph[call][v], sizeof(float)), 0)
          << what << ": forward call " << call << " (0: prefill), logit " << v << ": eager " << eager[call][v]
          << ", graph " << graph[call][v];
  }
}

TEST(DecodeGraphGpu, TinyGraphEqualsEagerBitForBit) {
  Qwen3Weights w;
  ASSERT_TRUE(make_dummy_qwen3("tiny", 0, &w).ok());
  expect_graph_equals_eager(w, {40, 6, 20, 2048}, "tiny, one prefill chunk");
  expect_graph_equals_eager(w, {1100, 6, 1040, 256}, "tiny, prefill in chunks of 256, split attention");
  expect_graph_equals_eager(w, {1, 4, 1, 2048}, "tiny, one-token prompt (the first decode runs eagerly)");
}

// Replays (from the third decode step on) that need a new page: at position 64 after a 60-token
// prompt, then again after truncate(62) released it; at 1024 and 1088 with split attention.
TEST(DecodeGraphGpu, DecodeAcrossPageBoundariesGraphEqualsEager) {
  static_assert(kKvPageSize == 64, "the scripts below cross the boundaries of 64-token pages");
  Qwen3Weights w;
  ASSERT_TRUE(make_dummy_qwen3("tiny", 0, &w).ok());
  expect_graph_equals_eager(w, {60, 8, 62, 2048}, "tiny, decode from 60 across 64, truncate to 62, again");
  expect_graph_equals_eager(w, {1020, 70, 1000, 256}, "tiny, decode from 1020 across 1024 and 1088, split attention");
}

TEST(DecodeGraphGpu, FewLayerQwen3_0_6bGraphEqualsEagerBitForBit) {
  const Qwen3Weights w = testing::few_layer_dummy("qwen3-0.6b", 3);
  expect_graph_equals_eager(w, {1100, 5, 500, 512}, "qwen3-0.6b shape, 3 layers, prefill in chunks of 512");
}

// MoE layers plan their experts on the device (moe_plan) and run them through grouped GEMMs sized
// by the host bound n, so one graph serves every routing.
TEST(DecodeGraphGpu, TinyMoeGraphEqualsEagerBitForBit) {
  Qwen3Weights w;
  ASSERT_TRUE(make_dummy_qwen3("tiny-moe", 0, &w).ok());
  expect_graph_equals_eager(w, {40, 8, 20, 2048}, "tiny-moe, one prefill chunk");
  expect_graph_equals_eager(w, {300, 6, 100, 64}, "tiny-moe, prefill in chunks of 64");
  expect_graph_equals_eager(w, {1, 4, 1, 2048}, "tiny-moe, one-token prompt (the first decode runs eagerly)");
}

// generate_greedy (the token chosen on the device by greedy_token, the next step enqueued before
// the host reads it) against forward() and the host's argmax, graphs on and off: the same tokens,
// the same length and the next forward's logits bit for bit (the step run ahead left nothing
// behind), after a stop at k tokens too; across the 64-token page boundaries and past 1024
// tokens (split attention), on tiny, tiny-moe and a 3-layer model of Qwen3-0.6B's shape.
void expect_greedy_equals_host(const Qwen3Weights& weights, int prompt_tokens, int steps, const std::string& what) {
  const int vocab = weights.config.vocab_size;
  for (const bool graphs : {false, true}) {
    for (const int stop_after : {0, 3}) {
      std::vector<testing::GreedyRun> runs;
      for (const bool on_backend : {false, true}) {
        std::unique_ptr<Backend> backend;
        ASSERT_TRUE(Backend::create(DeviceKind::kCuda, &backend).ok());
        ModelOptions options;
        options.max_context = 4096;
        options.max_batch_tokens = 512;
        options.cuda_graphs = graphs;
        std::unique_ptr<Qwen3Model> model;
        ASSERT_TRUE(Qwen3Model::create(weights, *backend, options, &model).ok());
        runs.push_back(testing::greedy_run(*model, ids(prompt_tokens, 3, vocab), steps, stop_after, on_backend));
      }
      const std::string where = what + (graphs ? ", graphs" : ", eager") + ", stop after " + std::to_string(stop_after);
      ASSERT_EQ(runs[0].tokens.size(), static_cast<std::size_t>(stop_after > 0 ? stop_after : steps)) << where;
      EXPECT_EQ(runs[1].tokens, runs[0].tokens) << where;
      EXPECT_EQ(runs[1].length, runs[0].length) << where;
      ASSERT_EQ(runs[1].next_logits.size(), runs[0].next_logits.size()) << where;
      EXPECT_EQ(std::memcmp(runs[1].next_logits.data(), runs[0].next_logits.data(), runs[0].next_logits.size() * 4), 0)
          << where;
    }
  }
}

TEST(DecodeGraphGpu, GreedyOnTheDeviceEqualsHostArgmax) {
  Qwen3Weights tiny, moe;
  ASSERT_TRUE(make_dummy_qwen3("tiny", 0, &tiny).ok());
  ASSERT_TRUE(make_dummy_qwen3("tiny-moe", 0, &moe).ok());
  expect_greedy_equals_host(tiny, 60, 12, "tiny from 60 across 64");
  expect_greedy_equals_host(tiny, 1020, 70, "tiny from 1020 across 1024 and 1088");
  expect_greedy_equals_host(moe, 40, 10, "tiny-moe");
  expect_greedy_equals_host(testing::few_layer_dummy("qwen3-0.6b", 3), 30, 8, "qwen3-0.6b shape, 3 layers");
}

}  // namespace
}  // namespace fp8lm
