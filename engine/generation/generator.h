// Generating a reply for one sequence: prefill the prompt (reusing whatever prefix of it is still in
// the KV cache), then sample token by token, streaming text as it becomes complete, until an end
// id, a stop string or the token limit.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/generation/sampler.h"
#include "engine/model/qwen3_model.h"
#include "fp8lm/tokenizer.h"

namespace fp8lm {

struct GenerateRequest {
  std::vector<std::int32_t> prompt;
  int max_tokens = 256;
  SamplingParams sampling;
  std::vector<std::int32_t> end_ids;       // generation_config's eos ids
  std::vector<std::string> stop_strings;   // the reply ends before the first occurrence
  bool ignore_end_ids = false;
};

struct GenerateResult {
  std::vector<std::int32_t> tokens;  // generated ids (an end id that stopped generation excluded)
  std::string text;                  // what was streamed
  std::string finish_reason;         // "stop" (end id or stop string) or "length"
  int prompt_tokens = 0;
  int cached_prompt_tokens = 0;      // prompt tokens whose KV rows were reused
  double time_to_first_token_s = 0;
  double total_s = 0;
  double decode_tokens_per_s = 0;    // tokens after the first, over the time after the first
};

class Generator {
 public:
  Generator(Qwen3Model& model, const Tokenizer& tokenizer) : model_(model), tokenizer_(tokenizer) {}
  // on_text receives the reply's text as it becomes final (never half a UTF-8 character, never a
  // prefix of a stop string that may still complete).
  Status generate(const GenerateRequest& request, const std::function<void(std::string_view)>& on_text,
                  GenerateResult* result);

 private:
  Qwen3Model& model_;
  const Tokenizer& tokenizer_;
  std::vector<std::int32_t> cached_;  // the ids whose KV rows are in the model's cache
};

}  // namespace fp8lm
