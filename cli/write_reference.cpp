// `fp8lm write-reference`: runs fp8lm itself (on the chosen backend) on the prompts and vocabulary
// subset of an existing reference file and writes a reference file of the same format
// (reference_file.h), so that `compare-reference` can compare one backend with another (the CUDA
// backend with the CPU twins) through the same comparison as with transformers. The greedy
// continuation follows tests/reference/qwen3_reference.py: from the prompt's last logits, record
// the argmax and the top-1 minus top-2 logit, feed the argmax, repeat.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <numeric>

#include "commands.h"
#include "engine/checkpoint/safetensors_writer.h"
#include "model_source.h"
#include "reference_file.h"

namespace fp8lm::cli {

namespace {

struct WriteReferenceOptions {
  ModelSourceOptions source;
  std::string prompts_from;
  std::string out;
  int greedy = 256;  // the defaults of qwen3_reference.py
  int top_k = 64;
};

// One prompt's tensors, owned until the file is written.
struct PromptResult {
  std::vector<std::int32_t> top_ids, greedy_ids;
  std::vector<float> top_logits, subset_logits, greedy_margins;
};

// A tensor written from memory that lives until the file is written.
template <typename T>
TensorToWrite tensor_from(std::string name, Dtype dtype, std::vector<std::int64_t> shape, std::span<const T> values) {
  return {std::move(name), dtype, std::move(shape), std::as_bytes(values), nullptr};
}

Status run_prompt(Qwen3Model& model, std::span<const std::int32_t> ids, std::span<const std::int32_t> subset,
                  const WriteReferenceOptions& o, PromptResult* r) {
  const std::size_t K = o.top_k;
  const int vocab = model.config().vocab_size;
  std::vector<std::int32_t> order(vocab);
  const auto on_position = [&](std::size_t, const float* logits) {
    // Descending, ties to the lower id, so that the file does not depend on the sort's whims.
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + K, order.end(), [&](std::int32_t a, std::int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (std::size_t k = 0; k < K; ++k) {
      r->top_ids.push_back(order[k]);
      r->top_logits.push_back(logits[order[k]]);
    }
    for (std::int32_t id : subset) r->subset_logits.push_back(logits[id]);
  };
  const auto next = [&](int, std::span<const float> logits) {
    // The first maximum, as compare-reference's argmax takes it; the runner-up may equal it.
    const auto top = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    float second = -std::numeric_limits<float>::infinity();
    for (int i = 0; i < vocab; ++i)
      if (i != top) second = std::max(second, logits[i]);
    r->greedy_ids.push_back(top);
    r->greedy_margins.push_back(logits[top] - second);
    return top;
  };
  return run_reference_prompt(model, ids, on_position, o.greedy, next);
}

Status run(const WriteReferenceOptions& o) {
  if (o.top_k < 1) return Status::Error("--top-k must be at least 1");
  if (o.greedy < 0) return Status::Error("--greedy must not be negative");
  std::error_code ec;
  // The prompts are read from the mapped file while the output is written.
  if (std::filesystem::equivalent(o.out, o.prompts_from, ec))
    return Status::Error("--out " + o.out + " is the --prompts-from file; write the new reference elsewhere");
  ReferencePrompts ref;
  FP8LM_RETURN_IF_ERROR(ReferencePrompts::open(o.prompts_from, &ref));
  LoadedModel m;
  FP8LM_RETURN_IF_ERROR(load_model(o.source, &m));
  FP8LM_RETURN_IF_ERROR(ref.check_fits(*m.model, o.greedy));
  if (o.top_k > m.config.vocab_size)
    return Status::Error(fmt::format("--top-k {} exceeds the vocabulary of {}", o.top_k, m.config.vocab_size));

  const std::size_t prompts = ref.prompts.size(), K = o.top_k, S = ref.subset.size();
  std::vector<PromptResult> results(prompts);
  std::vector<TensorToWrite> tensors{tensor_from("subset_ids", Dtype::I32, {static_cast<std::int64_t>(S)}, ref.subset)};
  for (std::size_t p = 0; p < prompts; ++p) {
    const auto T = static_cast<std::int64_t>(ref.prompts[p].size());
    PromptResult& r = results[p];
    FP8LM_RETURN_IF_ERROR(run_prompt(*m.model, ref.prompts[p], ref.subset, o, &r));
    fmt::print(stderr, "prompt {}: {} tokens, {} greedy steps\n", p, T, o.greedy);
    const std::string pre = fmt::format("p{}.", p);
    const auto G = static_cast<std::int64_t>(r.greedy_ids.size());
    const auto k = static_cast<std::int64_t>(K), s = static_cast<std::int64_t>(S);
    tensors.push_back(tensor_from(pre + "ids", Dtype::I32, {T}, ref.prompts[p]));
    tensors.push_back(tensor_from<std::int32_t>(pre + "top_ids", Dtype::I32, {T, k}, r.top_ids));
    tensors.push_back(tensor_from<float>(pre + "top_logits", Dtype::F32, {T, k}, r.top_logits));
    tensors.push_back(tensor_from<float>(pre + "subset_logits", Dtype::F32, {T, s}, r.subset_logits));
    tensors.push_back(tensor_from<std::int32_t>(pre + "greedy_ids", Dtype::I32, {G}, r.greedy_ids));
    tensors.push_back(tensor_from<float>(pre + "greedy_margins", Dtype::F32, {G}, r.greedy_margins));
  }
  // Which backend produced the file (compare-reference copies this into its --report).
  std::map<std::string, std::string> metadata{
      {"producer", "fp8lm write-reference"},
      {"model", m.description},
      {"device", m.backend->kind() == DeviceKind::kCpu ? "cpu" : "cuda"},
      {"backend", m.backend->describe()},
      {"prompts_from", std::filesystem::weakly_canonical(o.prompts_from, ec).string()},
      {"greedy", std::to_string(o.greedy)},
      {"top_k", std::to_string(o.top_k)},
      {"method", "fp8lm's forward pass on the backend named in 'backend'"}};
  // qwen3_reference.py's description of the prompts ("short,1024,8192"), where the source has one.
  if (const auto it = ref.file->metadata().find("prompts"); it != ref.file->metadata().end())
    metadata["prompts"] = it->second;
  FP8LM_RETURN_IF_ERROR(write_safetensors(o.out, tensors, metadata));
  fmt::print("write-reference: wrote {} ({} prompts, {})\n", o.out, prompts, m.description);
  return Status::Ok();
}

}  // namespace

void add_write_reference_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<WriteReferenceOptions>();
  CLI::App* cmd = app.add_subcommand(
      "write-reference",
      "Write a reference file from fp8lm itself on the prompts of another one (for compare-reference between backends)");
  add_model_source_options(cmd, &o->source);
  cmd->add_option("--prompts-from", o->prompts_from,
                  "Reference file whose prompts (p{p}.ids) and vocabulary subset (subset_ids) to use")
      ->required();
  cmd->add_option("--out", o->out, "The reference file to write (safetensors)")->required();
  cmd->add_option("--greedy", o->greedy, "Greedy steps after each prompt")->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "Largest logits recorded per position")->capture_default_str();
  cmd->callback([&exit_code, o] {
    const Status s = run(*o);
    if (!s.ok()) fmt::print(stderr, "fp8lm write-reference: {}\n", s.message());
    exit_code = s.ok() ? 0 : 1;
  });
}

}  // namespace fp8lm::cli
