// Native rendering of the Qwen3 chat template. Each step below mirrors one statement of the Jinja
// text in qwen3_chat_template.inc; the golden tests compare the two on conversations that reach
// every branch.
#include "fp8lm/chat_template.h"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace fp8lm {

namespace {

using ojson = nlohmann::ordered_json;

constexpr std::string_view kQwen3TemplateText =
#include "qwen3_chat_template.inc"
    ;

// Python str methods used by the template.
std::string_view LStripNewlines(std::string_view s) {
  while (!s.empty() && s.front() == '\n') s.remove_prefix(1);
  return s;
}
std::string_view RStripNewlines(std::string_view s) {
  while (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return s;
}
std::string_view StripNewlines(std::string_view s) { return RStripNewlines(LStripNewlines(s)); }
// s.split(sep)[0] and s.split(sep)[-1]
std::string_view BeforeFirst(std::string_view s, std::string_view sep) {
  const size_t p = s.find(sep);
  return p == std::string_view::npos ? s : s.substr(0, p);
}
std::string_view AfterLast(std::string_view s, std::string_view sep) {
  const size_t p = s.rfind(sep);
  return p == std::string_view::npos ? s : s.substr(p + sep.size());
}

// Jinja truthiness of a JSON value.
bool Truthy(const ojson& v) {
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_string()) return !v.get_ref<const std::string&>().empty();
  if (v.is_array() || v.is_object()) return !v.empty();
  if (v.is_number_integer()) return v.get<int64_t>() != 0;
  if (v.is_number_unsigned()) return v.get<uint64_t>() != 0;
  if (v.is_number_float()) return v.get<double>() != 0.0;
  return true;
}

void AppendJson(const ojson& v, std::string* out) {
  switch (v.type()) {
    case ojson::value_t::object: {
      out->push_back('{');
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out->append(", ");
        first = false;
        out->append(ojson(it.key()).dump(-1, ' ', false, ojson::error_handler_t::replace));
        out->append(": ");
        AppendJson(it.value(), out);
      }
      out->push_back('}');
      break;
    }
    case ojson::value_t::array: {
      out->push_back('[');
      for (size_t i = 0; i < v.size(); ++i) {
        if (i) out->append(", ");
        AppendJson(v[i], out);
      }
      out->push_back(']');
      break;
    }
    default:
      out->append(v.dump(-1, ' ', false, ojson::error_handler_t::replace));
  }
}

struct Message {
  std::string role;
  std::string content;
  const ojson* json;
};

}  // namespace

std::string ToJsonForTemplate(const ojson& value) {
  std::string out;
  AppendJson(value, &out);
  return out;
}

ChatTemplate ChatTemplate::Qwen3() { return ChatTemplate(); }

std::string_view ChatTemplate::name() const { return "qwen3"; }

Status ChatTemplate::FromTemplateText(std::string_view text, std::string_view origin, ChatTemplate* out) {
  if (text == kQwen3TemplateText) {
    *out = Qwen3();
    return Status::Ok();
  }
  // Name the first difference: it tells a maintainer whether this is a new Qwen3 revision.
  size_t same = 0;
  while (same < text.size() && same < kQwen3TemplateText.size() && text[same] == kQwen3TemplateText[same]) ++same;
  const size_t line = 1 + std::count(text.begin(), text.begin() + same, '\n');
  return Status::Error(std::string(origin) + ": the chat template (" + std::to_string(text.size()) +
                       " characters) is not one fp8lm renders. fp8lm renders the Qwen3 template natively "
                       "and recognises it by its exact text; this one differs from it from line " +
                       std::to_string(line) + " on. Supported: qwen3 (the hybrid-thinking template of "
                       "the original Qwen3 releases, with tools and reasoning_content).");
}

Status ChatTemplate::FromTokenizerConfig(const std::string& path, ChatTemplate* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(path + ": cannot open the tokenizer config");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::exception& e) {
    return Status::Error(path + ": not valid JSON: " + e.what());
  }
  if (!config.is_object() || !config.contains("chat_template")) {
    return Status::Error(path + ": no \"chat_template\" field (the checkpoint has no chat template)");
  }
  const nlohmann::json& t = config["chat_template"];
  if (t.is_string()) return FromTemplateText(t.get<std::string>(), path + " chat_template", out);
  if (t.is_array()) {
    for (const auto& entry : t) {
      if (entry.is_object() && entry.value("name", std::string()) == "default" && entry.contains("template") &&
          entry["template"].is_string()) {
        return FromTemplateText(entry["template"].get<std::string>(), path + " chat_template[default]", out);
      }
    }
    return Status::Error(path + ": \"chat_template\" is a list without an entry named \"default\"");
  }
  return Status::Error(path + ": \"chat_template\" is neither a string nor a list of named templates");
}

Status ChatTemplate::FromModelDir(const std::string& dir, ChatTemplate* out) {
  return FromTokenizerConfig(dir + "/tokenizer_config.json", out);
}

Status ChatTemplate::Render(const ojson& messages, const ojson& tools, const ChatTemplateOptions& options,
                            std::string* prompt) const {
  if (!messages.is_array()) return Status::Error("messages must be a JSON array of message objects");
  if (messages.empty()) return Status::Error("messages is empty: a chat needs at least one message");
  if (!tools.is_null() && !tools.is_array()) return Status::Error("tools must be a JSON array (or null)");

  std::vector<Message> msgs;
  msgs.reserve(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    const ojson& m = messages[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return Status::Error(where + " is not an object");
    if (!m.contains("role") || !m["role"].is_string()) return Status::Error(where + " has no string \"role\"");
    Message msg{m["role"].get<std::string>(), "", &m};
    if (msg.role != "system" && msg.role != "user" && msg.role != "assistant" && msg.role != "tool") {
      return Status::Error(where + " has role \"" + msg.role +
                           "\"; the Qwen3 template knows system, user, assistant and tool");
    }
    const ojson content = m.contains("content") ? m["content"] : ojson();
    if (content.is_string()) {
      msg.content = content.get<std::string>();
    } else if (!(msg.role == "assistant" && content.is_null())) {
      return Status::Error(where + " (" + msg.role + ") needs a string \"content\"" +
                           (content.is_array() ? " (content parts / multimodal input are not supported)" : ""));
    }
    if (m.contains("tool_calls") && !m["tool_calls"].is_null() && !m["tool_calls"].is_array()) {
      return Status::Error(where + ".tool_calls must be an array");
    }
    if (m.contains("reasoning_content") && !m["reasoning_content"].is_null() &&
        !m["reasoning_content"].is_string()) {
      return Status::Error(where + ".reasoning_content must be a string or null");
    }
    msgs.push_back(std::move(msg));
  }

  std::string& out = *prompt;
  out.clear();
  const bool has_tools = !tools.is_null() && !tools.empty();
  if (has_tools) {
    out += "<|im_start|>system\n";
    if (msgs[0].role == "system") out += msgs[0].content + "\n\n";
    out += "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
           "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
    for (const ojson& tool : tools) {
      out += "\n";
      AppendJson(tool, &out);
    }
    out += "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
           "within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
           "\"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n";
  } else if (msgs[0].role == "system") {
    out += "<|im_start|>system\n" + msgs[0].content + "<|im_end|>\n";
  }

  // The last user message that is a real query (not a wrapped tool response) splits the history:
  // assistant turns after it keep their reasoning, earlier ones keep only the text after </think>.
  const size_t n = msgs.size();
  bool multi_step_tool = true;
  size_t last_query_index = n - 1;
  for (size_t k = n; k-- > 0;) {
    const std::string_view c = msgs[k].content;
    if (multi_step_tool && msgs[k].role == "user" &&
        !(c.starts_with("<tool_response>") && c.ends_with("</tool_response>"))) {
      multi_step_tool = false;
      last_query_index = k;
    }
  }

  for (size_t i = 0; i < n; ++i) {
    const Message& msg = msgs[i];
    const ojson& m = *msg.json;
    if (msg.role == "user" || (msg.role == "system" && i != 0)) {
      out += "<|im_start|>" + msg.role + "\n" + msg.content + "<|im_end|>\n";
    } else if (msg.role == "assistant") {
      std::string_view content = msg.content;
      std::string_view reasoning;
      if (m.contains("reasoning_content") && !m["reasoning_content"].is_null()) {
        reasoning = m["reasoning_content"].get_ref<const std::string&>();
      } else if (content.find("</think>") != std::string_view::npos) {
        const std::string_view whole = msg.content;
        content = LStripNewlines(AfterLast(whole, "</think>"));
        reasoning = LStripNewlines(AfterLast(RStripNewlines(BeforeFirst(whole, "</think>")), "<think>"));
      }
      if (i > last_query_index && (i == n - 1 || !reasoning.empty())) {
        out += "<|im_start|>assistant\n<think>\n";
        out += StripNewlines(reasoning);
        out += "\n</think>\n\n";
        out += LStripNewlines(content);
      } else {
        out += "<|im_start|>assistant\n";
        out += content;
      }
      if (m.contains("tool_calls") && Truthy(m["tool_calls"])) {
        const ojson& calls = m["tool_calls"];
        for (size_t j = 0; j < calls.size(); ++j) {
          const std::string where = "messages[" + std::to_string(i) + "].tool_calls[" + std::to_string(j) + "]";
          if ((j == 0 && !content.empty()) || j > 0) out += "\n";
          const ojson* call = &calls[j];
          if (!call->is_object()) return Status::Error(where + " is not an object");
          if (call->contains("function") && Truthy((*call)["function"])) call = &(*call)["function"];
          if (!call->is_object() || !call->contains("name") || !(*call)["name"].is_string()) {
            return Status::Error(where + " has no string \"name\" (in itself or in its \"function\")");
          }
          if (!call->contains("arguments")) return Status::Error(where + " has no \"arguments\"");
          out += "<tool_call>\n{\"name\": \"";
          out += (*call)["name"].get_ref<const std::string&>();
          out += "\", \"arguments\": ";
          const ojson& args = (*call)["arguments"];
          if (args.is_string()) {
            out += args.get_ref<const std::string&>();
          } else {
            AppendJson(args, &out);
          }
          out += "}\n</tool_call>";
        }
      }
      out += "<|im_end|>\n";
    } else if (msg.role == "tool") {
      if (i == 0 || msgs[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + msg.content + "\n</tool_response>";
      if (i == n - 1 || msgs[i + 1].role != "tool") out += "<|im_end|>\n";
    }
  }
  if (options.add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (!options.enable_thinking) out += "<think>\n\n</think>\n\n";
  }
  return Status::Ok();
}

}  // namespace fp8lm
