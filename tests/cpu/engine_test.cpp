// The Qwen3 model and the generator on the CPU backend with the `tiny` preset's weights: chunked
// and incremental forwards agree bit for bit with one full forward, errors leave the sequence
// usable, generation is reproducible, reuses the cached prefix and honours stop strings.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "engine/checkpoint/dummy_weights.h"
#include "engine/generation/generator.h"
#include "engine/model/qwen3_model.h"
#include "tokenizer_test_data.h"

namespace fp8lm {
namespace {

class TinyModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    weights_ = new Qwen3Weights;
    ASSERT_TRUE(make_dummy_qwen3("tiny", 0, weights_).ok());
    ASSERT_TRUE(Backend::create(DeviceKind::kCpu, &backend_).ok());
  }
  static void TearDownTestSuite() {
    delete weights_;
    backend_.reset();
  }
  std::unique_ptr<Qwen3Model> make_model(int max_context = 256, int max_batch_tokens = 64) {
    std::unique_ptr<Qwen3Model> m;
    const Status s = Qwen3Model::create(*weights_, *backend_, {max_context, max_batch_tokens}, &m);
    EXPECT_TRUE(s.ok()) << s.message();
    return m;
  }
  static std::vector<std::int32_t> prompt(int n) {
    std::vector<std::int32_t> ids(n);
    for (int i = 0; i < n; ++i) ids[i] = (i * 7919 + 13) % 151000;
    return ids;
  }
  static Qwen3Weights* weights_;
  static std::unique_ptr<Backend> backend_;
};
Qwen3Weights* TinyModel::weights_ = nullptr;
std::unique_ptr<Backend> TinyModel::backend_;

TEST_F(TinyModel, ChunkedAndIncrementalForwardsMatchOneForward) {
  const std::vector<std::int32_t> ids = prompt(23);
  auto whole = make_model(256, 64);
  std::vector<float> all;
  ASSERT_TRUE(whole->forward(ids, true, &all).ok());
  const std::size_t vocab = whole->config().vocab_size;
  ASSERT_EQ(all.size(), ids.size() * vocab);

  auto chunked = make_model(256, 5);  // 23 tokens in chunks of 5
  std::vector<float> chunked_all;
  ASSERT_TRUE(chunked->forward(ids, true, &chunked_all).ok());
  EXPECT_EQ(chunked_all, all);

  auto incremental = make_model(256, 64);
  std::vector<float> last;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    ASSERT_TRUE(incremental->forward(std::span<const std::int32_t>(&ids[i], 1), false, &last).ok());
    ASSERT_TRUE(std::equal(last.begin(), last.end(), all.begin() + i * vocab)) << "position " << i;
  }
  EXPECT_EQ(incremental->length(), 23);
}

TEST_F(TinyModel, ErrorsLeaveTheSequenceUsable) {
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

TEST_F(TinyGenerator, GreedyIsReproducibleAndReusesThePrefix) {
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

TEST_F(TinyGenerator, StopStringEndsTheReplyBeforeIt) {
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

TEST_F(TinyGenerator, RejectsAPromptLongerThanTheContext) {
  Generator gen(*model_, *tokenizer_);
  GenerateRequest req = request(4);
  req.prompt = prompt(128);
  GenerateResult r;
  const Status s = gen.generate(req, nullptr, &r);
  EXPECT_NE(s.message().find("the context holds 128"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace fp8lm
