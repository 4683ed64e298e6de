#include "engine/generation/generator.h"

#include <algorithm>
#include <chrono>

namespace fp8lm {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Holds back text that could be the start of a stop string; releases the rest at UTF-8 boundaries.
class StopFilter {
 public:
  StopFilter(const std::vector<std::string>& stops, const std::function<void(std::string_view)>& sink)
      : stops_(stops), sink_(sink) {
    for (const std::string& s : stops_) hold_ = std::max(hold_, s.empty() ? 0 : s.size() - 1);
  }
  // Returns true when a stop string was found (the text before it has been emitted).
  bool push(std::string_view text, std::string* emitted) {
    pending_ += text;
    std::size_t first = std::string::npos;
    for (const std::string& s : stops_)
      if (!s.empty()) first = std::min(first, pending_.find(s));
    if (first != std::string::npos) {
      emit(first, emitted);
      return true;
    }
    std::size_t cut = pending_.size() > hold_ ? pending_.size() - hold_ : 0;
    while (cut > 0 && cut < pending_.size() && (static_cast<unsigned char>(pending_[cut]) & 0xC0) == 0x80) --cut;
    emit(cut, emitted);
    return false;
  }
  void flush(std::string* emitted) { emit(pending_.size(), emitted); }

 private:
  void emit(std::size_t count, std::string* emitted) {
    if (count == 0) return;
    const std::string_view out(pending_.data(), count);
    emitted->append(out);
    if (sink_) sink_(out);
    pending_.erase(0, count);
  }
  const std::vector<std::string>& stops_;
  const std::function<void(std::string_view)>& sink_;
  std::size_t hold_ = 0;
  std::string pending_;
};

}  // namespace

Status Generator::generate(const GenerateRequest& req, const std::function<void(std::string_view)>& on_text,
                           GenerateResult* result) {
  if (req.prompt.empty()) return Status::Error("generate: the prompt is empty");
  if (req.max_tokens < 1) return Status::Error("generate: max_tokens must be >= 1");
  FP8LM_RETURN_IF_ERROR(req.sampling.validate());
  if (static_cast<long long>(req.prompt.size()) >= model_.max_context())
    return Status::Error("generate: the prompt has " + std::to_string(req.prompt.size()) +
                         " tokens; the context holds " + std::to_string(model_.max_context()) +
                         " (prompt and reply together); shorten the prompt or raise --max-context");

  GenerateResult r;
  r.prompt_tokens = static_cast<int>(req.prompt.size());
  const auto start = Clock::now();

  // Reuse the cached prefix (at least one prompt token must run to produce logits).
  std::size_t common = 0;
  while (common < cached_.size() && common < req.prompt.size() && cached_[common] == req.prompt[common]) ++common;
  common = std::min(common, req.prompt.size() - 1);
  model_.truncate(static_cast<int>(common));
  cached_.resize(common);
  r.cached_prompt_tokens = static_cast<int>(common);

  std::vector<float> logits;
  const std::span<const std::int32_t> rest(req.prompt.data() + common, req.prompt.size() - common);
  FP8LM_RETURN_IF_ERROR(model_.forward(rest, false, &logits));
  cached_.insert(cached_.end(), rest.begin(), rest.end());

  Sampler sampler(req.sampling);
  sampler.start(req.prompt);
  IncrementalDetokenizer detok(tokenizer_, /*skip_special_tokens=*/true);
  StopFilter filter(req.stop_strings, on_text);
  Clock::time_point first_token_at;
  std::string piece;
  r.finish_reason = "length";
  const int room = model_.max_context() - static_cast<int>(req.prompt.size());
  const int limit = std::min(req.max_tokens, room);
  // Every chosen token, an end id that stops the reply too; all but the last are forwarded.
  std::vector<std::int32_t> chosen;
  Status failed = Status::Ok();
  // Takes the next chosen token; returns whether the reply goes on.
  const auto take = [&](std::int32_t id) {
    chosen.push_back(id);
    if (chosen.size() == 1) {
      first_token_at = Clock::now();
      r.time_to_first_token_s = seconds_since(start);
    }
    if (!req.ignore_end_ids && std::find(req.end_ids.begin(), req.end_ids.end(), id) != req.end_ids.end()) {
      r.finish_reason = "stop";
      return false;
    }
    r.tokens.push_back(id);
    sampler.accept(id);
    piece.clear();
    failed = detok.Push(id, &piece);
    if (!failed.ok()) return false;
    if (filter.push(piece, &r.text)) {
      r.finish_reason = "stop";
      return false;
    }
    return static_cast<int>(chosen.size()) < limit;
  };
  // Greedy without penalties needs no logits on the host: the model picks each token on the
  // backend, a step ahead of this loop (Qwen3Model::generate_greedy).
  Status ran = Status::Ok();
  if (take(sampler.sample(logits))) {
    if (sampler.plain_greedy()) {
      ran = model_.generate_greedy(chosen.back(), limit - static_cast<int>(chosen.size()), take);
    } else {
      do {
        ran = model_.forward(std::span<const std::int32_t>(&chosen.back(), 1), false, &logits);
      } while (ran.ok() && take(sampler.sample(logits)));
    }
  }
  if (ran.ok()) ran = failed;
  if (!ran.ok()) {
    model_.truncate(static_cast<int>(cached_.size()));  // the prompt stays cached, the reply is dropped
    return ran;
  }
  cached_.insert(cached_.end(), chosen.begin(), chosen.end() - 1);
  if (r.finish_reason == "length") {
    piece.clear();
    detok.Finish(&piece);
    if (!filter.push(piece, &r.text)) filter.flush(&r.text);
  }
  r.total_s = seconds_since(start);
  if (r.tokens.size() > 1)
    r.decode_tokens_per_s = (r.tokens.size() - 1) / std::chrono::duration<double>(Clock::now() - first_token_at).count();
  *result = std::move(r);
  return Status::Ok();
}

}  // namespace fp8lm
