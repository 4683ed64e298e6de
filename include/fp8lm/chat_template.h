// The Qwen3 chat format, rendered natively in C++ (no Jinja interpreter). A checkpoint's
// tokenizer_config.json carries its template as Jinja text; fp8lm recognises the templates it
// renders by their exact text and refuses any other with an error that says so, rather than
// producing a prompt the model was not trained on.
//
// Messages and tools are JSON in the OpenAI / transformers shape:
//   {"role": "system" | "user" | "assistant" | "tool", "content": "...",
//    "reasoning_content": "..." (assistant, optional),
//    "tool_calls": [{"type": "function", "function": {"name": "...", "arguments": {...} | "..."}}]}
//   tools: [{"type": "function", "function": {"name": ..., "description": ..., "parameters": {...}}}]
// Documented deviations from the Jinja text (docs/tokenizer.md): an assistant message whose
// "content" is null or missing (OpenAI clients send that with tool calls) renders as "" where
// Jinja would fail; an unknown role, a non-string content elsewhere and an empty message list are
// errors where Jinja would print nothing or fail obscurely.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fp8lm/status.h"

namespace fp8lm {

struct ChatTemplateOptions {
  bool add_generation_prompt = true;
  // Qwen3 hybrid thinking: when false, the generation prompt ends with an empty think block
  // ("<think>\n\n</think>\n\n") so the model answers directly.
  bool enable_thinking = true;
};

class ChatTemplate {
 public:
  enum class Kind { kQwen3 };

  // Reads "chat_template" from a tokenizer_config.json (a string, or a list of {name, template}
  // where the one named "default" is used).
  static Status FromTokenizerConfig(const std::string& path, ChatTemplate* out);
  static Status FromModelDir(const std::string& dir, ChatTemplate* out);
  // Recognises a template text; `origin` names it in errors.
  static Status FromTemplateText(std::string_view text, std::string_view origin, ChatTemplate* out);
  // The built-in Qwen3 template, whatever the checkpoint says.
  static ChatTemplate Qwen3();

  // Renders the prompt. `tools` is null or an array (an empty array means no tools).
  Status Render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                const ChatTemplateOptions& options, std::string* prompt) const;

  Kind kind() const { return kind_; }
  std::string_view name() const;

 private:
  Kind kind_ = Kind::kQwen3;
};

// JSON as Jinja's `tojson` filter writes it in transformers (Python json.dumps defaults with
// ensure_ascii=False): ", " and ": " separators, keys in their given order, non-ASCII kept.
std::string ToJsonForTemplate(const nlohmann::ordered_json& value);

}  // namespace fp8lm
