// `fp8lm tokenize` and `fp8lm chat-template`: the tokenizer and the chat format from the command
// line, through the same code the engine uses (engine/tokenizer/).
//
//   fp8lm tokenize --model DIR "Hello world"            -> [9707, 1879]
//   echo -n "Hello" | fp8lm tokenize --tokenizer tokenizer.json -
//   fp8lm tokenize --model DIR --decode "[9707, 1879]"  -> Hello world
//   fp8lm tokenize --model DIR --bench CORPUS.jsonl     -> encoding throughput, one thread
//   fp8lm chat-template --model DIR --messages chat.json [--enable-thinking false] [--tools tools.json]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "fp8lm/chat_template.h"
#include "fp8lm/tokenizer.h"

namespace fp8lm::cli {

namespace {

int Fail(const std::string& message) {
  fmt::print(stderr, "fp8lm: error: {}\n", message);
  return 1;
}

Status ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(path + ": cannot open");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  *out = buffer.str();
  return Status::Ok();
}

// TEXT, or all of standard input when TEXT is "-".
std::string ReadInput(const std::string& text) {
  if (text != "-") return text;
  std::ostringstream buffer;
  buffer << std::cin.rdbuf();
  return buffer.str();
}

Status LoadTokenizer(const std::string& model_dir, const std::string& tokenizer_file,
                     std::unique_ptr<Tokenizer>* tok) {
  if (model_dir.empty() == tokenizer_file.empty()) {
    return Status::Error("give exactly one of --model DIR or --tokenizer FILE");
  }
  return tokenizer_file.empty() ? Tokenizer::FromModelDir(model_dir, tok) : Tokenizer::FromFile(tokenizer_file, tok);
}

std::string IdsToJson(const std::vector<TokenId>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

struct BenchResult {
  size_t strings = 0, bytes = 0, tokens = 0;
  double seconds = 0;             // median of the timed passes
  double first_pass_seconds = 0;  // the warm-up pass (cold BPE cache for the first subset)
};

// Strings shorter than this make the "short" subset of the benchmark (the corpus' 1 MB strings
// stress long-piece BPE, which could dominate the total).
constexpr size_t kShortStringBytes = 64 * 1024;

Status ReadCorpus(const std::string& corpus_path, std::vector<std::string>* texts) {
  std::ifstream in(corpus_path);
  if (!in) return Status::Error(corpus_path + ": cannot open the corpus");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      return Status::Error(corpus_path + ": a line is not JSON: " + e.what());
    }
    if (j.is_object() && j.contains("t") && j["t"].is_string()) texts->push_back(j["t"].get<std::string>());
    else if (j.is_object() && j.contains("text") && j["text"].is_string()) texts->push_back(j["text"].get<std::string>());
  }
  if (texts->empty()) return Status::Error(corpus_path + ": no {\"t\": ...} or {\"text\": ...} lines");
  return Status::Ok();
}

// Encodes every string `passes` times on this thread after one warm-up pass (both sides of the
// comparison keep a BPE cache: this measures the steady state).
Status Bench(const Tokenizer& tok, const std::vector<const std::string*>& texts, int passes, BenchResult* r) {
  std::vector<TokenId> ids;
  r->strings = texts.size();
  const auto warm0 = std::chrono::steady_clock::now();
  for (const std::string* t : texts) {  // warm-up, and the token count
    ids.clear();
    FP8LM_RETURN_IF_ERROR(tok.Encode(*t, &ids));
    r->tokens += ids.size();
  }
  r->first_pass_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - warm0).count();
  for (const std::string* t : texts) r->bytes += t->size();
  std::vector<double> times;
  for (int p = 0; p < passes; ++p) {
    const auto t0 = std::chrono::steady_clock::now();
    for (const std::string* t : texts) {
      ids.clear();
      FP8LM_RETURN_IF_ERROR(tok.Encode(*t, &ids));
    }
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  r->seconds = times[times.size() / 2];
  return Status::Ok();
}

}  // namespace

void add_tokenize_command(CLI::App& app, int& exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "tokenize", "Print the token ids of TEXT (or, with --decode, the text of a JSON array of ids)");
  struct Options {
    std::string model_dir, tokenizer_file, text, bench_corpus, bench_json;
    bool decode = false, skip_special = false, replace_invalid = false, no_added = false;
    int bench_passes = 5;
  };
  auto o = std::make_shared<Options>();
  cmd->add_option("--model", o->model_dir, "Checkpoint folder (reads DIR/tokenizer.json)");
  cmd->add_option("--tokenizer", o->tokenizer_file, "A tokenizer.json file");
  cmd->add_option("text", o->text, "The text, or - to read standard input; with --decode, a JSON array of ids");
  cmd->add_flag("--decode", o->decode, "Decode a JSON array of ids into text");
  cmd->add_flag("--skip-special-tokens", o->skip_special, "With --decode: leave out special tokens");
  cmd->add_flag("--replace-invalid-utf8", o->replace_invalid,
                "Replace ill-formed UTF-8 in the input by U+FFFD instead of failing");
  cmd->add_flag("--no-added-tokens", o->no_added,
                "Encode added tokens such as <|im_end|> as plain text instead of matching them");
  cmd->add_option("--bench", o->bench_corpus,
                  "Measure single-thread encoding throughput on a JSONL corpus ({\"t\": text} per line)");
  cmd->add_option("--bench-passes", o->bench_passes, "Timed passes over the corpus (median is reported)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--bench-json", o->bench_json, "Also write the --bench result as JSON to this file");
  cmd->callback([&exit_code, o] {
    exit_code = 1;
    std::unique_ptr<Tokenizer> tok;
    if (Status s = LoadTokenizer(o->model_dir, o->tokenizer_file, &tok); !s.ok()) {
      exit_code = Fail(s.message());
      return;
    }
    if (!o->bench_corpus.empty()) {
      std::vector<std::string> texts;
      if (Status s = ReadCorpus(o->bench_corpus, &texts); !s.ok()) {
        exit_code = Fail(s.message());
        return;
      }
      std::vector<const std::string*> all, short_only;
      for (const auto& t : texts) {
        all.push_back(&t);
        if (t.size() < kShortStringBytes) short_only.push_back(&t);
      }
      nlohmann::ordered_json j = {{"implementation", "fp8lm"}, {"threads", 1}, {"passes", o->bench_passes}};
      for (const auto& [name, subset] : {std::pair{"all", &all}, std::pair{"short", &short_only}}) {
        BenchResult r;
        if (Status s = Bench(*tok, *subset, o->bench_passes, &r); !s.ok()) {
          exit_code = Fail(s.message());
          return;
        }
        j[name] = {{"strings", r.strings}, {"bytes", r.bytes}, {"tokens", r.tokens}, {"seconds_median", r.seconds},
                   {"first_pass_seconds", r.first_pass_seconds},
                   {"mb_per_s", r.bytes / r.seconds / 1e6}, {"tokens_per_s", r.tokens / r.seconds}};
        fmt::print("fp8lm tokenizer, 1 thread, {} strings ({}): {:.1f} MB, {} tokens in {:.3f} s (median of {}): "
                   "{:.2f} MB/s, {:.2f} M tokens/s\n",
                   name, r.strings, r.bytes / 1e6, r.tokens, r.seconds, o->bench_passes, r.bytes / r.seconds / 1e6,
                   r.tokens / r.seconds / 1e6);
      }
      if (!o->bench_json.empty()) std::ofstream(o->bench_json) << j.dump(2) << "\n";
      exit_code = 0;
      return;
    }
    if (o->text.empty()) {
      exit_code = Fail("give TEXT (or - to read standard input)");
      return;
    }
    const std::string input = ReadInput(o->text);
    if (o->decode) {
      std::vector<TokenId> ids;
      try {
        const auto j = nlohmann::json::parse(input);
        ids = j.get<std::vector<TokenId>>();
      } catch (const nlohmann::json::exception& e) {
        exit_code = Fail(std::string("--decode expects a JSON array of integer ids: ") + e.what());
        return;
      }
      std::string text;
      if (Status s = tok->Decode(ids, &text, o->skip_special); !s.ok()) {
        exit_code = Fail(s.message());
        return;
      }
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fputc('\n', stdout);
      exit_code = 0;
      return;
    }
    EncodeOptions options;
    options.parse_added_tokens = !o->no_added;
    options.invalid_utf8 = o->replace_invalid ? InvalidUtf8::kReplace : InvalidUtf8::kError;
    std::vector<TokenId> ids;
    if (Status s = tok->Encode(input, &ids, options); !s.ok()) {
      exit_code = Fail(s.message() + (o->replace_invalid ? "" : " (--replace-invalid-utf8 replaces it by U+FFFD)"));
      return;
    }
    fmt::print("{}\n", IdsToJson(ids));
    exit_code = 0;
  });
}

void add_chat_template_command(CLI::App& app, int& exit_code) {
  CLI::App* cmd = app.add_subcommand("chat-template", "Print the prompt the checkpoint's chat template makes of a chat");
  struct Options {
    std::string model_dir, messages_file, tools_file;
    std::string template_name;
    bool enable_thinking = true, no_generation_prompt = false, ids = false;
  };
  auto o = std::make_shared<Options>();
  cmd->add_option("--model", o->model_dir, "Checkpoint folder (tokenizer_config.json, tokenizer.json)")->required();
  cmd->add_option("--messages", o->messages_file,
                  "JSON file: an array of messages, or an object with \"messages\" (and \"tools\")")
      ->required();
  cmd->add_option("--tools", o->tools_file, "JSON file: an array of tool definitions");
  cmd->add_option("--enable-thinking", o->enable_thinking,
                  "Qwen3 thinking (true|false); false ends the prompt with an empty think block");
  cmd->add_flag("--no-generation-prompt", o->no_generation_prompt, "Do not open an assistant turn at the end");
  cmd->add_flag("--ids", o->ids, "Print the token ids of the prompt instead of its text");
  cmd->add_option("--template", o->template_name,
                  "Render with fp8lm's built-in format of this name (qwen3) instead of recognising the "
                  "checkpoint's template (for a checkpoint with another revision of the same format)")
      ->check(CLI::IsMember({"qwen3"}));
  cmd->callback([&exit_code, o] {
    exit_code = 1;
    ChatTemplate chat;
    if (o->template_name == "qwen3") {
      chat = ChatTemplate::Qwen3();
    } else if (Status s = ChatTemplate::FromModelDir(o->model_dir, &chat); !s.ok()) {
      exit_code = Fail(s.message() + "\n(if it is a revision of the Qwen3 format, --template qwen3 renders it with "
                       "fp8lm's built-in Qwen3 format; check the result against the checkpoint's template)");
      return;
    }
    auto read_json = [](const std::string& path, nlohmann::ordered_json* out) -> Status {
      std::string text;
      FP8LM_RETURN_IF_ERROR(ReadFile(path, &text));
      try {
        *out = nlohmann::ordered_json::parse(text);
      } catch (const nlohmann::json::exception& e) {
        return Status::Error(path + ": not valid JSON: " + e.what());
      }
      return Status::Ok();
    };
    nlohmann::ordered_json messages, tools;
    if (Status s = read_json(o->messages_file, &messages); !s.ok()) {
      exit_code = Fail(s.message());
      return;
    }
    if (messages.is_object()) {  // an OpenAI-style request body
      if (messages.contains("tools")) tools = messages["tools"];
      messages = messages.contains("messages") ? messages["messages"] : nlohmann::ordered_json();
    }
    if (!o->tools_file.empty()) {
      if (Status s = read_json(o->tools_file, &tools); !s.ok()) {
        exit_code = Fail(s.message());
        return;
      }
    }
    ChatTemplateOptions options;
    options.enable_thinking = o->enable_thinking;
    options.add_generation_prompt = !o->no_generation_prompt;
    std::string prompt;
    if (Status s = chat.Render(messages, tools, options, &prompt); !s.ok()) {
      exit_code = Fail(o->messages_file + ": " + s.message());
      return;
    }
    if (o->ids) {
      std::unique_ptr<Tokenizer> tok;
      std::vector<TokenId> ids;
      Status s = Tokenizer::FromModelDir(o->model_dir, &tok);
      if (s.ok()) s = tok->Encode(prompt, &ids);
      if (!s.ok()) {
        exit_code = Fail(s.message());
        return;
      }
      fmt::print("{}\n", IdsToJson(ids));
    } else {
      std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    }
    exit_code = 0;
  });
}

}  // namespace fp8lm::cli
