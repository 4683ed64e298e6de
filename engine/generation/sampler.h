// Choosing the next token from logits: penalties, temperature, top-k, top-p, min-p, then a draw
// from a seeded generator (the same seed and logits give the same tokens on every machine).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "fp8lm/random.h"
#include "fp8lm/status.h"

namespace fp8lm {

struct SamplingParams {
  double temperature = 0.0;  // 0: greedy (argmax after penalties)
  int top_k = 0;             // 0: off
  double top_p = 1.0;        // 1: off
  double min_p = 0.0;        // 0: off; keeps tokens with p >= min_p * p_max
  double repetition_penalty = 1.0;  // > 1 discourages tokens already in the prompt or reply
  double presence_penalty = 0.0;    // subtracted once from every token already generated
  std::uint64_t seed = 0;

  // An error naming the first out-of-range value.
  Status validate() const;
};

// The ids the penalties look at, kept as distinct ids plus a membership set and updated one token
// at a time (rebuilding a set of the whole context for every token costs O(context) hashing per
// token). A set is only kept while its penalty is on.
class SeenTokens {
 public:
  SeenTokens(bool track_context, bool track_reply) : track_context_(track_context), track_reply_(track_reply) {}
  // Starts over: `context` holds the prompt and reply ids, `reply` the reply ids only.
  void reset(std::span<const std::int32_t> context, std::span<const std::int32_t> reply);
  // One more reply id (it joins both).
  void add_reply(std::int32_t id);
  const std::vector<std::int32_t>& context() const { return context_.ids; }  // distinct, first-seen order
  const std::vector<std::int32_t>& reply() const { return reply_.ids; }

 private:
  struct Set {
    std::unordered_set<std::int32_t> members;
    std::vector<std::int32_t> ids;
    void add(std::int32_t id) {
      if (members.insert(id).second) ids.push_back(id);
    }
    void clear() {
      members.clear();
      ids.clear();
    }
  };
  bool track_context_, track_reply_;
  Set context_, reply_;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params)
      : params_(params),
        rng_(params.seed),
        seen_(params.repetition_penalty != 1.0, params.presence_penalty != 0.0) {}

  // A sequence's history, for the penalties: start() with the prompt, accept() each generated id.
  void start(std::span<const std::int32_t> prompt) { seen_.reset(prompt, {}); }
  void accept(std::int32_t id) { seen_.add_reply(id); }
  // The next id given the history so far. `logits` is modified (penalties, temperature).
  std::int32_t sample(std::span<float> logits);
  // The same for a history given whole (replacing the recorded one): `context` holds the prompt and
  // reply ids (for the repetition penalty), `generated` the reply ids only (for the presence penalty).
  std::int32_t sample(std::span<float> logits, std::span<const std::int32_t> context,
                      std::span<const std::int32_t> generated);
  // Whether sample() is the plain argmax of the logits (temperature 0, no penalties): then the
  // model can pick the tokens itself (Qwen3Model::generate_greedy).
  bool plain_greedy() const { return params_.temperature == 0.0 && !penalized(); }

 private:
  bool penalized() const { return params_.repetition_penalty != 1.0 || params_.presence_penalty != 0.0; }
  SamplingParams params_;
  Rng rng_;
  SeenTokens seen_;
  std::vector<std::int32_t> candidates_;
  std::vector<float> probs_;
};

}  // namespace fp8lm
