#include "reference_file.h"

#include <fmt/format.h>

#include <algorithm>

namespace fp8lm::cli {

Status ReferencePrompts::open(const std::string& path, ReferencePrompts* out) {
  ReferencePrompts r;
  FP8LM_RETURN_IF_ERROR(SafetensorsFile::open(path, &r.file));
  FP8LM_RETURN_IF_ERROR(reference_tensor(*r.file, "subset_ids", Dtype::I32, 1, &r.subset));
  for (int p = 0; r.file->tensors().count(fmt::format("p{}.ids", p)); ++p) {
    const std::string name = fmt::format("p{}.ids", p);
    std::span<const std::int32_t> ids;
    FP8LM_RETURN_IF_ERROR(reference_tensor(*r.file, name, Dtype::I32, 1, &ids));
    if (ids.empty()) return Status::Error(path + ": tensor " + name + " is empty");
    r.prompts.push_back(ids);
  }
  if (r.prompts.empty()) return Status::Error(path + ": no prompts (tensors p0.ids, p1.ids, ...)");
  *out = std::move(r);
  return Status::Ok();
}

Status ReferencePrompts::check_fits(const Qwen3Model& model, int greedy_steps) const {
  const int vocab = model.config().vocab_size;
  auto check_ids = [&](const std::string& name, std::span<const std::int32_t> ids) {
    for (std::int32_t id : ids)
      if (id < 0 || id >= vocab)
        return Status::Error(fmt::format("{}: tensor {} holds id {}, outside the model's vocabulary of {}",
                                         file->path(), name, id, vocab));
    return Status::Ok();
  };
  FP8LM_RETURN_IF_ERROR(check_ids("subset_ids", subset));
  const int fed_after = std::max(greedy_steps - 1, 0);
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    const std::string name = fmt::format("p{}.ids", p);
    FP8LM_RETURN_IF_ERROR(check_ids(name, prompts[p]));
    if (static_cast<long long>(prompts[p].size()) + fed_after > model.max_context())
      return Status::Error(fmt::format("{}: tensor {} has {} tokens, which with {} greedy steps exceed the context of "
                                       "{} tokens (--max-context)",
                                       file->path(), name, prompts[p].size(), greedy_steps, model.max_context()));
  }
  return Status::Ok();
}

Status run_reference_prompt(Qwen3Model& model, std::span<const std::int32_t> ids,
                            const std::function<void(std::size_t t, const float* logits)>& on_position,
                            int greedy_steps,
                            const std::function<std::int32_t(int g, std::span<const float> logits)>& next) {
  const std::size_t vocab = model.config().vocab_size;
  model.reset();
  std::vector<float> logits;
  for (std::size_t begin = 0; begin < ids.size(); begin += kReferenceChunkTokens) {
    const std::size_t count = std::min<std::size_t>(kReferenceChunkTokens, ids.size() - begin);
    FP8LM_RETURN_IF_ERROR(model.forward(ids.subspan(begin, count), true, &logits));
    for (std::size_t i = 0; i < count; ++i) on_position(begin + i, logits.data() + i * vocab);
  }
  if (greedy_steps <= 0 || ids.empty()) return Status::Ok();
  // The last position's logits start the continuation; each step's forward leaves one row.
  std::span<const float> last = std::span<const float>(logits).last(vocab);
  for (int g = 0;; ++g) {
    const std::int32_t token = next(g, last);
    if (g + 1 == greedy_steps) return Status::Ok();
    FP8LM_RETURN_IF_ERROR(model.forward(std::span<const std::int32_t>(&token, 1), false, &logits));
    last = logits;
  }
}

}  // namespace fp8lm::cli
