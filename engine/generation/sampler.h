// Choosing the next token from logits: penalties, temperature, top-k, top-p, min-p, then a draw
// from a seeded generator (the same seed and logits give the same tokens on every machine).
#pragma once

#include <cstdint>
#include <span>
#include <string>
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

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}
  // `logits` is modified (penalties, temperature). `context` holds the prompt and reply ids (for
  // the repetition penalty); `generated` the reply ids only (for the presence penalty).
  std::int32_t sample(std::span<float> logits, std::span<const std::int32_t> context,
                      std::span<const std::int32_t> generated);

 private:
  SamplingParams params_;
  Rng rng_;
  std::vector<std::int32_t> candidates_;
  std::vector<float> probs_;
};

}  // namespace fp8lm
