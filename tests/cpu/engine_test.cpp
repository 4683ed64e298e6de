// The Qwen3 model and the generator on the CPU backend with the `tiny` and `tiny-moe` presets'
// weights: chunked and incremental forwards agree bit for bit with one full forward, errors leave
// the sequence usable, generation is reproducible, reuses the cached prefix and honours stop
// strings. MoE layers: one expert with top-1 is the dense MLP, experts are interchangeable, and
// mlp_only_layers mix both kinds of layer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/checkpoint/dummy_weights.h"
#include "engine/checkpoint/qwen3_presets.h"
#include "engine/generation/generator.h"
#include "engine/model/qwen3_model.h"
#include "cpu_backend_for_tests.h"
#include "greedy_run.h"
#include "tokenizer_test_data.h"

namespace fp8lm {
namespace {

// Dummy weights of a preset (seed 0), made once per test binary.
const Qwen3Weights& preset_weights(const std::string& preset) {
  static std::map<std::string, std::unique_ptr<Qwen3Weights>> cache;
  std::unique_ptr<Qwen3Weights>& w = cache[preset];
  if (!w) {
    w = std::make_unique<Qwen3Weights>();
    EXPECT_TRUE(make_dummy_qwen3(preset, 0, w.get()).ok());
  }
  return *w;
}

std::unique_ptr<Qwen3Model> make_model(const Qwen3Weights& weights, int max_context = 256, int max_batch_tokens = 64) {
  std::unique_ptr<Qwen3Model> m;
  const Status s = Qwen3Model::create(weights, cpu_backend(), {max_context, max_batch_tokens}, &m);
  EXPECT_TRUE(s.ok()) << s.message();
  return m;
}

std::vector<std::int32_t> prompt(int n) {
  std::vector<std::int32_t> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = (i * 7919 + 13) % 151000;
  return ids;
}

// The logits of every position of `ids` in one forward.
std::vector<float> all_logits(const Qwen3Weights& weights, const std::vector<std::int32_t>& ids) {
  std::vector<float> logits;
  EXPECT_TRUE(make_model(weights)->forward(ids, true, &logits).ok());
  return logits;
}

// The dense tiny preset and the tiny-moe preset run the same tests.
class TinyModel : public ::testing::TestWithParam<std::string> {
 protected:
  const Qwen3Weights& weights() const { return preset_weights(GetParam()); }
  std::unique_ptr<Qwen3Model> make_model(int max_context = 256, int max_batch_tokens = 64) const {
    return fp8lm::make_model(weights(), max_context, max_batch_tokens);
  }
};
INSTANTIATE_TEST_SUITE_P(Presets, TinyModel, ::testing::Values("tiny", "tiny-moe"));

TEST_P(TinyModel, ChunkedAndIncrementalForwardsMatchOneForward) {
  // One chunk of 70 tokens: more than the 64 rows of logits the model computes per lm_head call.
  const std::vector<std::int32_t> ids = prompt(70);
  auto whole = make_model(256, 128);
  std::vector<float> all;
  ASSERT_TRUE(whole->forward(ids, true, &all).ok());
  const std::size_t vocab = whole->config().vocab_size;
  ASSERT_EQ(all.size(), ids.size() * vocab);

  auto chunked = make_model(256, 5);  // 70 tokens in chunks of 5
  std::vector<float> chunked_all;
  ASSERT_TRUE(chunked->forward(ids, true, &chunked_all).ok());
  EXPECT_EQ(chunked_all, all);

  // One token at a time, layer by layer and (dense) with every layer as one op (cpu::decode_layers,
  // the twin of the GPU's persistent decode kernel): both must give the one forward's bits.
  for (const bool one_op : {false, true}) {
    std::unique_ptr<Qwen3Model> incremental;
    ModelOptions options{256, 64};
    options.decode_layers = one_op;
    ASSERT_TRUE(Qwen3Model::create(weights(), cpu_backend(), options, &incremental).ok());
    EXPECT_EQ(incremental->uses_decode_layers(), one_op && GetParam() == "tiny");
    std::vector<float> last;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      ASSERT_TRUE(incremental->forward(std::span<const std::int32_t>(&ids[i], 1), false, &last).ok());
      ASSERT_TRUE(std::equal(last.begin(), last.end(), all.begin() + i * vocab)) << "position " << i;
    }
    EXPECT_EQ(incremental->length(), 70);
  }
}

TEST_P(TinyModel, ErrorsLeaveTheSequenceUsable) {
  auto m = make_model(16, 64);
  std::vector<float> logits;
  ASSERT_TRUE(m->forward(prompt(10), false, &logits).ok());
  Status s = m->forward(prompt(7), false, &logits);
  EXPECT_NE(s.message().find("exceed the context length 16"), std::string::npos) << s.message();
  std::vector<std::int32_t> bad = {5, 151936};
  s = m->forward(bad, false, &logits);
  EXPECT_NE(s.message().find("outside the vocabulary"), std::string::npos) << s.message();
  EXPECT_EQ(m->length(), 10);
  EXPECT_TRUE(m->forward(prompt(6), false, &logits).ok());
  EXPECT_EQ(m->length(), 16);
}

// generate_greedy (greedy_token on the backend, a step ahead) chooses what forward() and the host's
// argmax choose, leaves the same sequence (the next forward's logits are the same bits), stops
// when told, and stops at the end of the context.
TEST_P(TinyModel, GreedyOnTheBackendChoosesWhatTheHostChooses) {
  const std::vector<std::int32_t> ids = prompt(12);
  for (const int stop_after : {0, 1, 5}) {
    auto host_model = make_model(256, 64), backend_model = make_model(256, 64);
    const testing::GreedyRun host = testing::greedy_run(*host_model, ids, 20, stop_after, false);
    const testing::GreedyRun backend = testing::greedy_run(*backend_model, ids, 20, stop_after, true);
    const std::size_t want = stop_after > 0 ? stop_after : 20;
    ASSERT_EQ(host.tokens.size(), want);
    EXPECT_EQ(backend.tokens, host.tokens) << "stop after " << stop_after;
    EXPECT_EQ(backend.length, 12 + static_cast<int>(want));
    EXPECT_EQ(backend.length, host.length);
    EXPECT_EQ(backend.next_logits, host.next_logits) << "stop after " << stop_after;
  }
  // A 16-token context after a 10-token prompt: 6 tokens, then no room for another.
  auto m = make_model(16, 64);
  const testing::GreedyRun full = testing::greedy_run(*m, prompt(10), 100, 0, true);
  EXPECT_EQ(full.tokens.size(), 6u);
  EXPECT_EQ(full.length, 16);
  Status s = m->generate_greedy(5, 1, [](std::int32_t) { return true; });
  EXPECT_NE(s.message().find("generate_greedy: 16 tokens in context + 1 new exceed the context length 16"), std::string::npos) << s.message();
  m->truncate(10);
  s = m->generate_greedy(151936, 1, [](std::int32_t) { return true; });
  EXPECT_NE(s.message().find("generate_greedy: token id 151936 at index 0 is outside the vocabulary"), std::string::npos) << s.message();
  s = m->generate_greedy(5, 0, [](std::int32_t) { return true; });
  EXPECT_NE(s.message().find("max_tokens must be >= 1"), std::string::npos) << s.message();
  EXPECT_EQ(m->length(), 10);
}

class TinyGenerator : public TinyModel {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Tokenizer::FromModelDir(fp8lm::testing::TokenizerDataDir() + "/qwen3", &tokenizer_).ok())
        << "tokenizer data missing: run scripts/fetch-tokenizer-data.sh";
    model_ = make_model(128, 64);
  }
  GenerateRequest request(int max_tokens) {
    GenerateRequest r;
    r.prompt = prompt(12);
    r.max_tokens = max_tokens;
    r.end_ids = {151645, 151643};
    return r;
  }
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Qwen3Model> model_;
};
INSTANTIATE_TEST_SUITE_P(Presets, TinyGenerator, ::testing::Values("tiny", "tiny-moe"));

TEST_P(TinyGenerator, GreedyIsReproducibleAndReusesThePrefix) {
  Generator gen(*model_, *tokenizer_);
  GenerateResult a, b;
  std::string streamed;
  ASSERT_TRUE(gen.generate(request(20), [&](std::string_view t) { streamed += t; }, &a).ok());
  EXPECT_EQ(a.finish_reason, "length");
  EXPECT_EQ(a.tokens.size(), 20u);
  EXPECT_EQ(streamed, a.text);
  std::string decoded;
  ASSERT_TRUE(tokenizer_->Decode(a.tokens, &decoded, true).ok());
  EXPECT_EQ(a.text, decoded);
  ASSERT_TRUE(gen.generate(request(20), nullptr, &b).ok());
  EXPECT_EQ(b.tokens, a.tokens);
  EXPECT_EQ(b.cached_prompt_tokens, 11);  // the whole prompt but its last token came from the cache
}

TEST_P(TinyGenerator, StopStringEndsTheReplyBeforeIt) {
  Generator gen(*model_, *tokenizer_);
  GenerateResult full, cut;
  ASSERT_TRUE(gen.generate(request(24), nullptr, &full).ok());
  ASSERT_GE(full.text.size(), 12u);
  GenerateRequest req = request(24);
  req.stop_strings = {full.text.substr(6, 4)};
  std::string streamed;
  ASSERT_TRUE(gen.generate(req, [&](std::string_view t) { streamed += t; }, &cut).ok());
  EXPECT_EQ(cut.finish_reason, "stop");
  EXPECT_EQ(cut.text, full.text.substr(0, full.text.find(req.stop_strings[0])));
  EXPECT_EQ(streamed, cut.text);
}

TEST_P(TinyGenerator, RejectsAPromptLongerThanTheContext) {
  Generator gen(*model_, *tokenizer_);
  GenerateRequest req = request(4);
  req.prompt = prompt(128);
  GenerateResult r;
  const Status s = gen.generate(req, nullptr, &r);
  EXPECT_NE(s.message().find("the context holds 128"), std::string::npos) << s.message();
}

// A MoE layer with one expert and top-1 routes every token to it with weight exactly 1, so its
// output is the dense MLP's with the same weights, bit for bit.
TEST(MoeModel, OneExpertTopOneIsTheDenseMlp) {
  const Qwen3Weights& dense = preset_weights("tiny");
  Qwen3Weights moe = dense;
  moe.config.model_type = "qwen3_moe";
  moe.config.num_experts = 1;
  moe.config.num_experts_per_tok = 1;
  moe.config.moe_intermediate_size = dense.config.intermediate_size;
  for (Qwen3LayerWeights& layer : moe.layers) {
    layer.moe.router.assign(dense.config.hidden_size, float_to_bf16(0.01f));
    layer.moe.experts = {{std::move(layer.gate_up), std::move(layer.down)}};
    layer.gate_up = {};
    layer.down = {};
  }
  const std::vector<std::int32_t> ids = prompt(9);
  EXPECT_EQ(all_logits(moe, ids), all_logits(dense, ids));
}

// Permuting the experts together with the router's rows routes every token to the same experts
// under new ids, with the same weights up to rounding: the softmax denominator sums the experts in
// index order, so a probability can move by an fp32 ulp and its bf16 weight by one bf16 ulp, which
// the FP8 re-quantization of later layers can amplify (docs/engine.md). So: the same greedy token
// at every position and logits within 2% (relative Frobenius); a routing or combine error that
// depended on expert ids (a wrong expert, a lost weight) moves them far more.
TEST(MoeModel, PermutingExpertsAndRouterRowsKeepsTheOutput) {
  const Qwen3Weights& original = preset_weights("tiny-moe");
  ASSERT_EQ(original.config.num_experts_per_tok, 2);
  Qwen3Weights permuted = original;
  const int experts = original.config.num_experts, hidden = original.config.hidden_size;
  for (std::size_t i = 0; i < permuted.layers.size(); ++i) {
    Qwen3MoeBlock& moe = permuted.layers[i].moe;
    const Qwen3MoeBlock& from = original.layers[i].moe;
    for (int e = 0; e < experts; ++e) {
      const int source = (e * 3 + 5) % experts;  // a permutation of 0..7
      moe.experts[e] = from.experts[source];
      std::copy_n(from.router.begin() + static_cast<std::ptrdiff_t>(source) * hidden, hidden,
                  moe.router.begin() + static_cast<std::ptrdiff_t>(e) * hidden);
    }
  }
  const std::vector<std::int32_t> ids = prompt(11);
  const std::vector<float> got = all_logits(permuted, ids), want = all_logits(original, ids);
  ASSERT_EQ(got.size(), want.size());
  const std::size_t vocab = original.config.vocab_size;
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    diff += (got[i] - want[i]) * double(got[i] - want[i]);
    norm += want[i] * double(want[i]);
  }
  std::printf("permuted experts: relative Frobenius difference %.3g\n", std::sqrt(diff / norm));
  EXPECT_LT(std::sqrt(diff / norm), 0.02);
  for (std::size_t t = 0; t < ids.size(); ++t) {
    const auto row = [&](const std::vector<float>& l) { return l.begin() + static_cast<std::ptrdiff_t>(t * vocab); };
    EXPECT_EQ(std::max_element(row(got), row(got) + vocab) - row(got),
              std::max_element(row(want), row(want) + vocab) - row(want))
        << "position " << t;
  }
}

// decoder_sparse_step and mlp_only_layers: a 3-layer model whose layer 1 is sparse and layers 0 and
// 2 dense runs, and chunked equals one forward.
TEST(MoeModel, MixedDenseAndSparseLayers) {
  Qwen3Config c;
  ASSERT_TRUE(qwen3_preset("tiny-moe", &c).ok());
  c.num_hidden_layers = 3;
  c.decoder_sparse_step = 2;  // layers 1 (and 3, absent) are sparse
  Qwen3Weights w;
  ASSERT_TRUE(make_dummy_qwen3(c, 1, &w).ok());
  ASSERT_FALSE(w.layers[0].gate_up.weight.empty());
  ASSERT_EQ(w.layers[1].moe.experts.size(), 8u);
  ASSERT_FALSE(w.layers[2].gate_up.weight.empty());
  const std::vector<std::int32_t> ids = prompt(7);
  const std::vector<float> whole = all_logits(w, ids);
  std::vector<float> chunked;
  ASSERT_TRUE(make_model(w, 64, 3)->forward(ids, true, &chunked).ok());
  EXPECT_EQ(chunked, whole);
}

TEST(MoeModel, WeightsThatDisagreeWithTheConfigAreRefused) {
  Qwen3Weights w = preset_weights("tiny-moe");
  w.layers[1].moe.experts.pop_back();
  std::unique_ptr<Qwen3Model> m;
  Status s = Qwen3Model::create(w, cpu_backend(), {64, 16}, &m);
  EXPECT_NE(s.message().find("layer 1 has 7 experts, config says 8"), std::string::npos) << s.message();
  w = preset_weights("tiny-moe");
  w.layers[0].moe.experts[3].down.k = 128;
  s = Qwen3Model::create(w, cpu_backend(), {64, 16}, &m);
  EXPECT_NE(s.message().find("layer 0 expert 3 down_proj is [256, 128], the config says [256, 256]"), std::string::npos)
      << s.message();
}

}  // namespace
}  // namespace fp8lm
