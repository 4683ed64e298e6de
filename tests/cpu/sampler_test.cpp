// Sampling: greedy, each filter on its own, penalties, reproducibility, and parameter validation.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <unordered_set>
#include <vector>

#include "engine/generation/sampler.h"
#include "fp8lm/random.h"

namespace fp8lm {
namespace {

std::vector<float> logits_of(std::initializer_list<float> v) { return std::vector<float>(v); }

std::int32_t draw(SamplingParams p, std::vector<float> logits, std::vector<std::int32_t> context = {},
                  std::vector<std::int32_t> generated = {}) {
  Sampler s(p);
  return s.sample(logits, context, generated);
}

TEST(Sampler, GreedyIsArgmaxWithLowestIdOnTies) {
  EXPECT_EQ(draw({}, logits_of({0.1f, 2.0f, -1.0f, 2.0f})), 1);
}

TEST(Sampler, TopKOneAndTinyTopPAreGreedy) {
  SamplingParams p;
  p.temperature = 1.0;
  p.top_k = 1;
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    p.seed = seed;
    EXPECT_EQ(draw(p, logits_of({0.0f, 0.5f, 0.4f})), 1);
  }
  p.top_k = 0;
  p.top_p = 0.01;
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    p.seed = seed;
    EXPECT_EQ(draw(p, logits_of({0.0f, 0.5f, 0.4f})), 1);
  }
}

TEST(Sampler, FrequenciesFollowTheSoftmax) {
  SamplingParams p;
  p.temperature = 1.0;
  p.seed = 123;
  Sampler s(p);
  const std::vector<float> base = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  std::map<int, int> count;
  const int trials = 20000;
  for (int i = 0; i < trials; ++i) {
    std::vector<float> l = base;
    ++count[s.sample(l, {}, {})];
  }
  EXPECT_NEAR(count[0] / double(trials), 0.5, 0.02);
  EXPECT_NEAR(count[1] / double(trials), 0.3, 0.02);
  EXPECT_NEAR(count[2] / double(trials), 0.2, 0.02);
}

TEST(Sampler, TopPKeepsTheSmallestPrefixReachingP) {
  SamplingParams p;
  p.temperature = 1.0;
  p.top_p = 0.75;  // 0.5 + 0.3 reaches it: token 2 (0.2) must never appear
  Sampler s(p);
  const std::vector<float> base = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  for (int i = 0; i < 2000; ++i) {
    std::vector<float> l = base;
    ASSERT_NE(s.sample(l, {}, {}), 2);
  }
}

TEST(Sampler, TopPOverALargeVocabulary) {
  // 100k tokens: one holds 60% of the mass, the rest share 40%; top_p 0.5 must pick the first.
  std::vector<float> l(100000, 0.0f);
  l[777] = std::log(0.6f * 99999 / 0.4f);
  SamplingParams p;
  p.temperature = 1.0;
  p.top_p = 0.5;
  for (std::uint64_t seed = 0; seed < 10; ++seed) {
    p.seed = seed;
    EXPECT_EQ(draw(p, l), 777);
  }
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  SamplingParams p;
  p.temperature = 1.0;
  p.min_p = 0.5;  // keeps tokens with p >= 0.5 * p_max: 0.5 and 0.3, not 0.2
  Sampler s(p);
  const std::vector<float> base = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  for (int i = 0; i < 2000; ++i) {
    std::vector<float> l = base;
    ASSERT_NE(s.sample(l, {}, {}), 2);
  }
}

TEST(Sampler, RepetitionAndPresencePenalties) {
  SamplingParams p;
  p.repetition_penalty = 2.0;  // 3.0 -> 1.5 for the seen token 0: token 1 (2.0) wins
  EXPECT_EQ(draw(p, logits_of({3.0f, 2.0f, -1.0f}), {0}), 1);
  p.repetition_penalty = 1.0;
  p.presence_penalty = 1.5;  // only generated tokens are penalised
  EXPECT_EQ(draw(p, logits_of({3.0f, 2.0f}), {0}, {}), 0);
  EXPECT_EQ(draw(p, logits_of({3.0f, 2.0f}), {0}, {0}), 1);
}

// The generator keeps the penalties' seen tokens incrementally (start + accept); a long generation
// must give the tokens of the old formula, which rebuilt the seen sets from the whole history for
// every token (as here: the penalties applied by hand, then a penalty-free sampler on the same seed).
TEST(Sampler, IncrementalPenaltiesEqualRecomputingFromScratch) {
  constexpr int kVocab = 3000, kSteps = 2000;
  Rng rng(99);
  std::vector<std::int32_t> prompt(500);
  for (std::int32_t& id : prompt) id = static_cast<std::int32_t>(rng.next() % 400);  // repeats
  prompt[7] = -1;       // ids outside the vocabulary are ignored
  prompt[9] = kVocab;
  for (const double temperature : {0.0, 0.9}) {
    SamplingParams p;
    p.temperature = temperature;
    p.top_k = 200;
    p.repetition_penalty = 1.3;
    p.presence_penalty = 0.7;
    p.seed = 5;
    SamplingParams no_penalties = p;
    no_penalties.repetition_penalty = 1.0;
    no_penalties.presence_penalty = 0.0;
    Sampler incremental(p), reference(no_penalties);
    incremental.start(prompt);
    std::vector<std::int32_t> context = prompt, generated;
    for (int step = 0; step < kSteps; ++step) {
      std::vector<float> logits(kVocab);
      // Few distinct likely tokens, so that the penalties keep deciding the winner.
      for (int i = 0; i < kVocab; ++i) logits[i] = static_cast<float>(rng.normal() * (i < 600 ? 2.0 : 0.5));
      std::vector<float> penalised = logits;
      for (std::int32_t id : std::unordered_set<std::int32_t>(context.begin(), context.end()))
        if (id >= 0 && id < kVocab)
          penalised[id] = penalised[id] > 0 ? penalised[id] / static_cast<float>(p.repetition_penalty)
                                            : penalised[id] * static_cast<float>(p.repetition_penalty);
      for (std::int32_t id : std::unordered_set<std::int32_t>(generated.begin(), generated.end()))
        if (id >= 0 && id < kVocab) penalised[id] -= static_cast<float>(p.presence_penalty);
      const std::int32_t want = reference.sample(penalised, {}, {});
      const std::int32_t got = incremental.sample(logits);
      ASSERT_EQ(got, want) << "temperature " << temperature << " step " << step;
      incremental.accept(got);
      context.push_back(got);
      generated.push_back(got);
    }
  }
}

TEST(Sampler, SameSeedSameTokens) {
  SamplingParams p;
  p.temperature = 0.8;
  p.top_k = 50;
  p.seed = 42;
  std::vector<float> base(1000);
  for (int i = 0; i < 1000; ++i) base[i] = std::sin(i * 0.37f) * 3;
  Sampler a(p), b(p);
  for (int i = 0; i < 200; ++i) {
    std::vector<float> la = base, lb = base;
    ASSERT_EQ(a.sample(la, {}, {}), b.sample(lb, {}, {}));
  }
}

TEST(Sampler, ValidateNamesTheBadParameter) {
  SamplingParams p;
  p.temperature = -1;
  EXPECT_NE(p.validate().message().find("temperature"), std::string::npos);
  p = {};
  p.top_p = 0;
  EXPECT_NE(p.validate().message().find("top_p"), std::string::npos);
  p = {};
  p.min_p = 1.5;
  EXPECT_NE(p.validate().message().find("min_p"), std::string::npos);
  p = {};
  p.top_k = -3;
  EXPECT_NE(p.validate().message().find("top_k"), std::string::npos);
  p = {};
  p.repetition_penalty = 0;
  EXPECT_NE(p.validate().message().find("repetition_penalty"), std::string::npos);
  EXPECT_TRUE(SamplingParams{}.validate().ok());
}

}  // namespace
}  // namespace fp8lm
