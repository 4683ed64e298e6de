#include "fp8lm/reasoning_parser.h"

#include <algorithm>

namespace fp8lm {

namespace {
constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";

// Length of the longest suffix of `s` that is a proper prefix of `tag`.
size_t PartialTagSuffix(std::string_view s, std::string_view tag) {
  for (size_t len = std::min(s.size(), tag.size() - 1); len > 0; --len) {
    if (s.substr(s.size() - len) == tag.substr(0, len)) return len;
  }
  return 0;
}
}  // namespace

ReasoningParser::ReasoningParser(bool prompt_opened_think)
    : state_(prompt_opened_think ? State::kReasoningStart : State::kStart) {}

void ReasoningParser::Push(std::string_view text, ReasoningSplit* delta) {
  held_.append(text);
  for (;;) {
    switch (state_) {
      case State::kStart:
        if (held_.size() < kOpen.size() && kOpen.starts_with(held_)) return;  // may still be "<think>"
        if (held_.starts_with(kOpen)) {
          held_.erase(0, kOpen.size());
          state_ = State::kReasoningStart;
        } else {
          state_ = State::kContent;
        }
        continue;
      case State::kReasoningStart:
      case State::kContentStart: {
        const size_t skip = held_.find_first_not_of('\n');
        if (skip == std::string::npos) {
          held_.clear();
          return;
        }
        held_.erase(0, skip);
        state_ = state_ == State::kReasoningStart ? State::kReasoning : State::kContent;
        continue;
      }
      case State::kReasoning: {
        const size_t close = held_.find(kClose);
        if (close != std::string::npos) {
          std::string_view before(held_.data(), close);
          while (!before.empty() && before.back() == '\n') before.remove_suffix(1);
          delta->reasoning.append(before);
          held_.erase(0, close + kClose.size());
          state_ = State::kContentStart;
          continue;
        }
        // Hold a possible partial "</think>" and the newlines before it (they are dropped if the
        // tag follows, emitted if more reasoning does).
        size_t keep = PartialTagSuffix(held_, kClose);
        while (keep < held_.size() && held_[held_.size() - keep - 1] == '\n') ++keep;
        delta->reasoning.append(held_, 0, held_.size() - keep);
        held_.erase(0, held_.size() - keep);
        return;
      }
      case State::kContent:
        delta->content.append(held_);
        held_.clear();
        return;
    }
  }
}

void ReasoningParser::Finish(ReasoningSplit* delta) {
  switch (state_) {
    case State::kStart:
    case State::kContent:
      delta->content.append(held_);
      break;
    case State::kReasoning: {
      std::string_view rest = held_;
      while (!rest.empty() && rest.back() == '\n') rest.remove_suffix(1);
      delta->reasoning.append(rest);
      break;
    }
    case State::kReasoningStart:
    case State::kContentStart:
      break;
  }
  held_.clear();
}

ReasoningSplit ReasoningParser::Split(std::string_view reply, bool prompt_opened_think) {
  ReasoningParser parser(prompt_opened_think);
  ReasoningSplit split;
  parser.Push(reply, &split);
  parser.Finish(&split);
  return split;
}

}  // namespace fp8lm
