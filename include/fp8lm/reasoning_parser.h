// Splits a generated reply into reasoning ("<think> ... </think>") and content, for the server's
// `reasoning_content` / `content` fields, in one piece or as a stream of deltas.
//
// Rules (Qwen3): the reply is reasoning from an opening "<think>" at its very start (or from the
// start, when the prompt already opened the think block) up to "</think>"; the rest is content.
// Newlines that the template puts around the block ("<think>\n", "\n</think>\n\n") are not part of
// either. A reply that opens a think block and never closes it (cut off by max_tokens) is all
// reasoning; a reply that does not start with "<think>" is all content.
#pragma once

#include <string>
#include <string_view>

namespace fp8lm {

struct ReasoningSplit {
  std::string reasoning;
  std::string content;
};

class ReasoningParser {
 public:
  // `prompt_opened_think`: the prompt ends inside an open think block (templates that append
  // "<think>\n" to the generation prompt), so the reply starts as reasoning.
  explicit ReasoningParser(bool prompt_opened_think = false);

  // Feeds more generated text; appends what is now known to be reasoning or content to `delta`.
  // Text that may be the start of a tag ("</thi") or of a newline that belongs to the block is held
  // back until it is resolved.
  void Push(std::string_view text, ReasoningSplit* delta);
  // End of the reply: releases what was held.
  void Finish(ReasoningSplit* delta);

  // The whole reply at once.
  static ReasoningSplit Split(std::string_view reply, bool prompt_opened_think = false);

 private:
  enum class State { kStart, kReasoningStart, kReasoning, kContentStart, kContent };
  State state_;
  std::string held_;
};

}  // namespace fp8lm
