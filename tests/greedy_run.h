// Greedy decoding two ways, for the tests that compare them: Qwen3Model::generate_greedy (the
// tokens chosen on the backend, a step ahead of the host) and forward() with the argmax on the
// host (std::max_element: the first of equal maxima, as greedy_token on NaN-free logits).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/model/qwen3_model.h"

namespace fp8lm::testing {

struct GreedyRun {
  std::vector<std::int32_t> tokens;  // the chosen tokens, in order
  int length = 0;                    // the model's length afterwards
  std::vector<float> next_logits;    // of one more forward() of the last chosen token, if there is room
};

inline std::int32_t host_argmax(const std::vector<float>& logits) {
  return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// Forwards `prompt` on a model at length 0, then chooses up to `steps` tokens greedily (on the
// backend or on the host), stopping early after `stop_after` tokens when it is > 0.
inline GreedyRun greedy_run(Qwen3Model& m, const std::vector<std::int32_t>& prompt, int steps, int stop_after,
                            bool on_backend) {
  GreedyRun r;
  std::vector<float> logits;
  Status s = m.forward(prompt, false, &logits);
  EXPECT_TRUE(s.ok()) << s.message();
  const std::int32_t first = host_argmax(logits);
  const int want = stop_after > 0 ? std::min(stop_after, steps) : steps;
  if (on_backend) {
    s = m.generate_greedy(first, steps, [&](std::int32_t id) {
      r.tokens.push_back(id);
      return static_cast<int>(r.tokens.size()) < want;
    });
    EXPECT_TRUE(s.ok()) << s.message();
  } else {
    std::int32_t token = first;
    for (int i = 0; i < want && s.ok(); ++i) {
      s = m.forward(std::span<const std::int32_t>(&token, 1), false, &logits);
      EXPECT_TRUE(s.ok()) << s.message();
      token = host_argmax(logits);
      r.tokens.push_back(token);
    }
  }
  r.length = m.length();
  if (!r.tokens.empty() && m.length() < m.max_context()) {
    s = m.forward(std::span<const std::int32_t>(&r.tokens.back(), 1), false, &r.next_logits);
    EXPECT_TRUE(s.ok()) << s.message();
  }
  return r;
}

}  // namespace fp8lm::testing
