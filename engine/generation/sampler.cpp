#include "engine/generation/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace fp8lm {

Status SamplingParams::validate() const {
  if (!(temperature >= 0.0) || !std::isfinite(temperature))
    return Status::Error("temperature must be >= 0 (0 is greedy), got " + std::to_string(temperature));
  if (top_k < 0) return Status::Error("top_k must be >= 0 (0 disables it), got " + std::to_string(top_k));
  if (!(top_p > 0.0 && top_p <= 1.0)) return Status::Error("top_p must be in (0, 1], got " + std::to_string(top_p));
  if (!(min_p >= 0.0 && min_p < 1.0)) return Status::Error("min_p must be in [0, 1), got " + std::to_string(min_p));
  if (!(repetition_penalty > 0.0) || !std::isfinite(repetition_penalty))
    return Status::Error("repetition_penalty must be > 0 (1 disables it), got " + std::to_string(repetition_penalty));
  if (!std::isfinite(presence_penalty)) return Status::Error("presence_penalty must be finite");
  return Status::Ok();
}

void SeenTokens::reset(std::span<const std::int32_t> context, std::span<const std::int32_t> reply) {
  context_.clear();
  reply_.clear();
  if (track_context_)
    for (std::int32_t id : context) context_.add(id);
  if (track_reply_)
    for (std::int32_t id : reply) reply_.add(id);
}

void SeenTokens::add_reply(std::int32_t id) {
  if (track_context_) context_.add(id);
  if (track_reply_) reply_.add(id);
}

std::int32_t Sampler::sample(std::span<float> logits, std::span<const std::int32_t> context,
                             std::span<const std::int32_t> generated) {
  seen_.reset(context, generated);
  return sample(logits);
}

std::int32_t Sampler::sample(std::span<float> logits) {
  const int vocab = static_cast<int>(logits.size());
  if (params_.repetition_penalty != 1.0) {
    // As in transformers: a seen token's logit is divided by the penalty if positive, multiplied if
    // negative (each token once, however often it was seen).
    const float p = static_cast<float>(params_.repetition_penalty);
    for (std::int32_t id : seen_.context())
      if (id >= 0 && id < vocab) logits[id] = logits[id] > 0 ? logits[id] / p : logits[id] * p;
  }
  if (params_.presence_penalty != 0.0) {
    for (std::int32_t id : seen_.reply())
      if (id >= 0 && id < vocab) logits[id] -= static_cast<float>(params_.presence_penalty);
  }
  if (params_.temperature == 0.0)  // greedy; ties go to the lowest id, as torch.argmax
    return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());

  // Weights exp((logit - max) / T) relative to the most likely token (whose weight is 1).
  const auto by_logit = [&](std::int32_t a, std::int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  candidates_.resize(vocab);
  std::iota(candidates_.begin(), candidates_.end(), 0);
  std::size_t sorted = 0;  // candidates_[0, sorted) are in descending logit order
  if (params_.top_k > 0 && params_.top_k < vocab) {
    std::partial_sort(candidates_.begin(), candidates_.begin() + params_.top_k, candidates_.end(), by_logit);
    candidates_.resize(params_.top_k);
    sorted = candidates_.size();
  }
  const float top = *std::max_element(logits.begin(), logits.end());
  const double inv_t = 1.0 / params_.temperature;
  probs_.resize(candidates_.size());
  double total = 0.0;
  for (std::size_t i = 0; i < candidates_.size(); ++i)
    total += probs_[i] = static_cast<float>(std::exp((logits[candidates_[i]] - top) * inv_t));

  std::size_t keep = candidates_.size();
  if (params_.top_p < 1.0) {
    // Sort only as far as needed: grow the sorted prefix until it holds top_p of the mass.
    for (std::size_t want = std::min(keep, std::max<std::size_t>(sorted, 64));; want = std::min(keep, want * 4)) {
      if (sorted < want) {
        std::partial_sort(candidates_.begin() + sorted, candidates_.begin() + want, candidates_.end(), by_logit);
        for (std::size_t i = 0; i < candidates_.size(); ++i)
          probs_[i] = static_cast<float>(std::exp((logits[candidates_[i]] - top) * inv_t));
        sorted = want;
      }
      double mass = 0.0;
      std::size_t i = 0;
      for (; i < sorted && mass < params_.top_p * total; ++i) mass += probs_[i];
      if (mass >= params_.top_p * total || sorted == keep) {
        keep = i;
        break;
      }
    }
  }
  double kept = 0.0;
  for (std::size_t i = 0; i < keep; ++i) {
    if (probs_[i] < params_.min_p) probs_[i] = 0.0f;  // min_p relative to the top token's weight 1
    kept += probs_[i];
  }
  double r = rng_.uniform() * kept;
  for (std::size_t i = 0; i < keep; ++i) {
    r -= probs_[i];
    if (r < 0 && probs_[i] > 0) return candidates_[i];
  }
  return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

}  // namespace fp8lm
