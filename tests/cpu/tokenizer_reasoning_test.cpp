// ReasoningParser: whole replies and every way of cutting them into stream deltas.
#include <gtest/gtest.h>

#include "fp8lm/reasoning_parser.h"

namespace fp8lm {
namespace {

struct Case {
  const char* reply;
  bool prompt_opened_think;
  const char* reasoning;
  const char* content;
};

const Case kCases[] = {
    {"<think>\nLet me think.\n</think>\n\nThe answer is 4.", false, "Let me think.", "The answer is 4."},
    {"<think>\n\n</think>\n\nDirect answer.", false, "", "Direct answer."},
    {"Plain answer without thinking.", false, "", "Plain answer without thinking."},
    {"<think>\nstill thinking when max_tokens hit\n\n", false, "still thinking when max_tokens hit", ""},
    {"<think>\nline one\n\nline two\n</think>\n\nA\n\nB\n", false, "line one\n\nline two", "A\n\nB\n"},
    {"reasoning from the prompt's open block\n</think>\n\ncontent", true, "reasoning from the prompt's open block", "content"},
    {"<think>a</think>b</think>c", false, "a", "b</think>c"},
    {"<thinking> is not the tag", false, "", "<thinking> is not the tag"},
    {"<thi", false, "", "<thi"},
    {"<think>\nends in a partial tag </thi", false, "ends in a partial tag </thi", ""},
    {"<think>x < y and </b> are not </think>done", false, "x < y and </b> are not ", "done"},
    {" <think>leading space: not a think block</think>", false, "", " <think>leading space: not a think block</think>"},
    {"", false, "", ""},
    {"<think>思考 🤔\n</think>\n\n答案", false, "思考 🤔", "答案"},
};

TEST(ReasoningParser, SplitsWholeReplies) {
  for (const Case& c : kCases) {
    const ReasoningSplit s = ReasoningParser::Split(c.reply, c.prompt_opened_think);
    EXPECT_EQ(s.reasoning, c.reasoning) << c.reply;
    EXPECT_EQ(s.content, c.content) << c.reply;
  }
}

TEST(ReasoningParser, StreamingGivesTheSameSplitForEveryCut) {
  for (const Case& c : kCases) {
    const std::string reply = c.reply;
    // One byte at a time, and every two-piece cut.
    {
      ReasoningParser p(c.prompt_opened_think);
      ReasoningSplit total;
      for (char ch : reply) p.Push(std::string_view(&ch, 1), &total);
      p.Finish(&total);
      EXPECT_EQ(total.reasoning, c.reasoning) << "bytewise: " << reply;
      EXPECT_EQ(total.content, c.content) << "bytewise: " << reply;
    }
    for (size_t cut = 0; cut <= reply.size(); ++cut) {
      ReasoningParser p(c.prompt_opened_think);
      ReasoningSplit total;
      p.Push(std::string_view(reply).substr(0, cut), &total);
      p.Push(std::string_view(reply).substr(cut), &total);
      p.Finish(&total);
      EXPECT_EQ(total.reasoning, c.reasoning) << "cut " << cut << ": " << reply;
      EXPECT_EQ(total.content, c.content) << "cut " << cut << ": " << reply;
    }
  }
}

TEST(ReasoningParser, EmitsReasoningBeforeTheEnd) {
  ReasoningParser p;
  ReasoningSplit d;
  p.Push("<think>\nfirst thoughts", &d);
  EXPECT_EQ(d.reasoning, "first thoughts");
  EXPECT_EQ(d.content, "");
  d = {};
  p.Push(" more\n", &d);  // the newline is held: it may precede </think>
  EXPECT_EQ(d.reasoning, " more");
  d = {};
  p.Push("</th", &d);
  EXPECT_EQ(d.reasoning, "");
  d = {};
  p.Push("ink>\n\nHello", &d);
  EXPECT_EQ(d.reasoning, "");
  EXPECT_EQ(d.content, "Hello");
}

}  // namespace
}  // namespace fp8lm
