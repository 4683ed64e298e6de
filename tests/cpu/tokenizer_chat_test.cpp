// The native Qwen3 chat template against @huggingface/jinja rendering the checkpoint's own
// template (golden/chat.json, from tests/reference/tokenizer/conversations.json), and the
// documented behaviour on inputs the template does not cover.
#include <fstream>

#include "fp8lm/chat_template.h"
#include "tokenizer_test_data.h"

namespace fp8lm {
namespace {

using ojson = nlohmann::ordered_json;
using testing::DataFile;

ojson LoadChatGolden() {
  const std::string path = DataFile("golden/chat.json");
  if (path.empty()) return ojson();
  std::ifstream in(path);
  return ojson::parse(in);
}

TEST(ChatTemplateGolden, RecognisesCheckpointTemplate) {
  const std::string path = DataFile("qwen3/tokenizer_config.json");
  ASSERT_FALSE(path.empty());
  ChatTemplate t;
  const Status s = ChatTemplate::FromTokenizerConfig(path, &t);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(t.name(), "qwen3");
}

TEST(ChatTemplateGolden, RendersLikeJinjaOnEveryConversation) {
  const ojson golden = LoadChatGolden();
  ASSERT_TRUE(golden.is_object());
  ChatTemplate t;
  ASSERT_TRUE(ChatTemplate::FromTemplateText(golden["template"].get<std::string>(), "chat.json", &t).ok());
  const ojson& cases = golden["cases"];
  ASSERT_GE(cases.size(), 20u);
  size_t identical = 0;
  for (const ojson& c : cases) {
    ChatTemplateOptions options;
    options.add_generation_prompt = c.value("add_generation_prompt", true);
    options.enable_thinking = c.value("enable_thinking", true);
    const ojson tools = c.contains("tools") ? c["tools"] : ojson();
    std::string prompt;
    const Status s = t.Render(c["messages"], tools, options, &prompt);
    ASSERT_TRUE(s.ok()) << c["name"] << ": " << s.message();
    if (prompt == c["prompt"].get<std::string>()) {
      ++identical;
    } else {
      ADD_FAILURE() << c["name"].get<std::string>() << "\n--- got ---\n" << prompt << "\n--- jinja ---\n"
                    << c["prompt"].get<std::string>();
    }
  }
  EXPECT_EQ(identical, cases.size());
  std::printf("[ golden ] chat template: %zu / %zu conversations identical to @huggingface/jinja\n", identical,
              cases.size());
}

TEST(ChatTemplate, UnknownTemplateIsRefusedWithReason) {
  ChatTemplate t;
  const Status s = ChatTemplate::FromTemplateText("{% for m in messages %}{{ m.content }}{% endfor %}", "x.json", &t);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("x.json"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("not one fp8lm renders"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("line 1"), std::string::npos) << s.message();
}

TEST(ChatTemplate, ModifiedQwen3TemplateIsRefusedNamingTheLine) {
  const ojson golden = LoadChatGolden();
  ASSERT_TRUE(golden.is_object());
  std::string text = golden["template"].get<std::string>();
  const size_t at = text.find("<tools>");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 7, "<TOOLS>");
  const size_t line = 1 + std::count(text.begin(), text.begin() + at, '\n');
  ChatTemplate t;
  const Status s = ChatTemplate::FromTemplateText(text, "cfg", &t);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("from line " + std::to_string(line) + " on"), std::string::npos) << s.message();
}

TEST(ChatTemplate, TokenizerConfigErrors) {
  const std::string dir = ::testing::TempDir();
  auto write = [&](const std::string& name, const std::string& body) {
    std::ofstream(dir + "/" + name) << body;
    return dir + "/" + name;
  };
  ChatTemplate t;
  Status s = ChatTemplate::FromTokenizerConfig(write("no_template.json", "{\"eos_token\": \"x\"}"), &t);
  EXPECT_NE(s.message().find("no \"chat_template\""), std::string::npos) << s.message();
  s = ChatTemplate::FromTokenizerConfig(write("bad.json", "{not json"), &t);
  EXPECT_NE(s.message().find("not valid JSON"), std::string::npos) << s.message();
  s = ChatTemplate::FromTokenizerConfig(write("list.json", "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"x\"}]}"), &t);
  EXPECT_NE(s.message().find("\"default\""), std::string::npos) << s.message();
  s = ChatTemplate::FromTokenizerConfig(dir + "/missing.json", &t);
  EXPECT_NE(s.message().find("cannot open"), std::string::npos) << s.message();
}

std::string Render(const ojson& messages, ChatTemplateOptions options = {}, const ojson& tools = ojson()) {
  std::string prompt;
  const Status s = ChatTemplate::Qwen3().Render(messages, tools, options, &prompt);
  return s.ok() ? prompt : "ERROR: " + s.message();
}

TEST(ChatTemplate, InvalidMessagesAreErrors) {
  EXPECT_EQ(Render(ojson::array()), "ERROR: messages is empty: a chat needs at least one message");
  EXPECT_NE(Render(ojson::object()).find("must be a JSON array"), std::string::npos);
  EXPECT_NE(Render(ojson::parse(R"([{"role": "developer", "content": "x"}])")).find("role \"developer\""), std::string::npos);
  EXPECT_NE(Render(ojson::parse(R"([{"content": "x"}])")).find("no string \"role\""), std::string::npos);
  EXPECT_NE(Render(ojson::parse(R"([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])")).find("content parts"),
            std::string::npos);
  EXPECT_NE(Render(ojson::parse(R"([{"role": "user"}])")).find("needs a string \"content\""), std::string::npos);
  EXPECT_NE(Render(ojson::parse(R"([{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [{"function": {"arguments": {}}}]}])"))
                .find("tool_calls[0] has no string \"name\""),
            std::string::npos);
  EXPECT_NE(Render(ojson::parse(R"([{"role": "user", "content": "q"}])"), {}, ojson::object()).find("tools must be"),
            std::string::npos);
}

TEST(ChatTemplate, NullAssistantContentRendersAsEmpty) {
  // OpenAI clients send "content": null with tool calls; the Jinja text would fail on it.
  const ojson with_null = ojson::parse(R"([{"role": "user", "content": "q"},
      {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
      {"role": "tool", "content": "r"}])");
  ojson with_empty = with_null;
  with_empty[1]["content"] = "";
  const std::string prompt = Render(with_null);
  EXPECT_EQ(prompt, Render(with_empty));
  EXPECT_NE(prompt.find("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>"), std::string::npos) << prompt;
}

TEST(ChatTemplate, ThinkingSwitchOnlyChangesTheGenerationPrompt) {
  const ojson m = ojson::parse(R"([{"role": "user", "content": "hi"}])");
  ChatTemplateOptions off;
  off.enable_thinking = false;
  EXPECT_EQ(Render(m), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(Render(m, off), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

TEST(ChatTemplate, ToJsonMatchesPythonJsonDumps) {
  const ojson v = ojson::parse(R"({"b": 1, "a": [true, null, 0.5, -3, "é\"\\\n\u0001"], "c": {}})");
  EXPECT_EQ(ToJsonForTemplate(v), "{\"b\": 1, \"a\": [true, null, 0.5, -3, \"é\\\"\\\\\\n\\u0001\"], \"c\": {}}");
}

}  // namespace
}  // namespace fp8lm
