// `fp8lm generate`: one prompt (--prompt) or an interactive chat (--chat), streamed to stdout,
// with a one-line summary on stderr after each reply.
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "commands.h"
#include "engine/generation/generator.h"
#include "model_source.h"

namespace fp8lm::cli {

namespace {

struct GenerateOptions {
  ModelSourceOptions source;
  std::string prompt;
  std::string system;
  bool chat = false;
  bool raw = false;
  bool enable_thinking = true;
  int max_tokens = 512;
  std::optional<double> temperature, top_p, min_p;
  std::optional<int> top_k;
  double repetition_penalty = 1.0;
  double presence_penalty = 0.0;
  std::uint64_t seed = 0;
  std::vector<std::string> stop;
  bool ignore_eos = false;
};

SamplingParams sampling_from(const GenerateOptions& o, const GenerationConfig& defaults) {
  SamplingParams p;
  p.temperature = o.temperature.value_or(defaults.temperature);
  p.top_k = o.top_k.value_or(defaults.top_k);
  p.top_p = o.top_p.value_or(defaults.top_p);
  p.min_p = o.min_p.value_or(defaults.min_p);
  p.repetition_penalty = o.repetition_penalty;
  p.presence_penalty = o.presence_penalty;
  p.seed = o.seed;
  return p;
}

void print_summary(const GenerateResult& r) {
  fmt::print(stderr, "\n[prompt {} tokens ({} cached), generated {} tokens, time to first token {:.1f} ms, {:.1f} tokens/s, finish: {}]\n",
             r.prompt_tokens, r.cached_prompt_tokens, r.tokens.size(), 1000.0 * r.time_to_first_token_s,
             r.decode_tokens_per_s, r.finish_reason);
}

// Renders the conversation (or takes the text as is with --raw) and generates the reply.
Status reply(LoadedModel& m, Generator& gen, const GenerateOptions& o, const nlohmann::ordered_json& messages,
             const std::string& raw_text, GenerateResult* result) {
  std::string prompt = raw_text;
  if (!o.raw) {
    ChatTemplateOptions t;
    t.enable_thinking = o.enable_thinking;
    FP8LM_RETURN_IF_ERROR(m.chat_template.Render(messages, nlohmann::ordered_json(), t, &prompt));
  }
  GenerateRequest req;
  FP8LM_RETURN_IF_ERROR(m.tokenizer->Encode(prompt, &req.prompt));
  req.max_tokens = o.max_tokens;
  req.sampling = sampling_from(o, m.generation);
  req.end_ids = m.generation.eos_token_ids;
  req.stop_strings = o.stop;
  req.ignore_end_ids = o.ignore_eos;
  FP8LM_RETURN_IF_ERROR(gen.generate(
      req, [](std::string_view text) { std::cout << text << std::flush; }, result));
  print_summary(*result);
  return Status::Ok();
}

Status run(const GenerateOptions& o) {
  if (o.chat == !o.prompt.empty()) return Status::Error("pass exactly one of --prompt TEXT and --chat");
  if (o.chat && o.raw) return Status::Error("--raw applies to --prompt only");
  LoadedModel m;
  FP8LM_RETURN_IF_ERROR(load_model(o.source, &m));
  fmt::print(stderr, "{}\n", m.description);
  Generator gen(*m.model, *m.tokenizer);
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!o.system.empty()) messages.push_back({{"role", "system"}, {"content", o.system}});
  GenerateResult result;
  if (!o.chat) {
    messages.push_back({{"role", "user"}, {"content", o.prompt}});
    return reply(m, gen, o, messages, o.prompt, &result);
  }
  fmt::print(stderr, "chat: type a message and Enter; /reset clears the conversation, /exit or Ctrl-D ends\n");
  std::string line;
  while (true) {
    fmt::print(stderr, "> ");
    if (!std::getline(std::cin, line) || line == "/exit") break;
    if (line == "/reset") {
      messages.erase(messages.begin() + (o.system.empty() ? 0 : 1), messages.end());
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({{"role", "user"}, {"content", line}});
    const Status s = reply(m, gen, o, messages, line, &result);
    if (!s.ok()) {  // a bad turn (e.g. context full) is reported; the session goes on
      fmt::print(stderr, "error: {}\n", s.message());
      messages.erase(messages.end() - 1);
      continue;
    }
    messages.push_back({{"role", "assistant"}, {"content", result.text}});
  }
  return Status::Ok();
}

}  // namespace

void add_generate_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt, or chat, streaming to stdout");
  add_model_source_options(cmd, &o->source);
  add_cuda_graphs_option(cmd, &o->source);
  cmd->add_option("--prompt", o->prompt, "The user message (rendered with the chat template unless --raw)");
  cmd->add_flag("--chat", o->chat, "Interactive chat on stdin");
  cmd->add_option("--system", o->system, "A system message");
  cmd->add_flag("--raw", o->raw, "Send --prompt to the model as is, without the chat template");
  cmd->add_option("--enable-thinking", o->enable_thinking, "Qwen3 thinking mode (false: answer directly)")
      ->capture_default_str();
  cmd->add_option("--max-tokens", o->max_tokens, "Most tokens to generate per reply")->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "0: greedy (default: the checkpoint's generation_config)");
  cmd->add_option("--top-k", o->top_k, "0: off (default: generation_config)");
  cmd->add_option("--top-p", o->top_p, "1: off (default: generation_config)");
  cmd->add_option("--min-p", o->min_p, "0: off (default: generation_config)");
  cmd->add_option("--repetition-penalty", o->repetition_penalty, "1: off")->capture_default_str();
  cmd->add_option("--presence-penalty", o->presence_penalty, "0: off")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Sampling seed (same seed, same tokens)")->capture_default_str();
  cmd->add_option("--stop", o->stop, "Stop string (repeatable)");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Do not stop at the end-of-reply ids");
  cmd->callback([&exit_code, o] {
    const Status s = run(*o);
    if (!s.ok()) fmt::print(stderr, "fp8lm generate: {}\n", s.message());
    exit_code = s.ok() ? 0 : 1;
  });
}

}  // namespace fp8lm::cli
