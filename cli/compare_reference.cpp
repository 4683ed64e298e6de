// `fp8lm compare-reference`: runs the model on the prompts stored in a reference file written by
// tests/reference/qwen3_reference.py (Hugging Face transformers on the same checkpoint) and
// compares, position by position, the logits and a greedy continuation.
//
// Reference file (safetensors), for each prompt p = 0, 1, ...:
//   p{p}.ids            I32 [T]       the prompt
//   p{p}.top_ids        I32 [T, K]    the reference's K largest logits per position, descending
//   p{p}.top_logits     F32 [T, K]
//   p{p}.subset_logits  F32 [T, S]    logits of the fixed vocabulary subset `subset_ids`
//   p{p}.greedy_ids     I32 [G]       greedy continuation of the prompt
//   p{p}.greedy_margins F32 [G]       top-1 minus top-2 logit at each greedy step
//   subset_ids          I32 [S]       a fixed random subset of the vocabulary
// Cosine similarity is computed over the subset plus the reference's top-K ids (the full vocabulary
// of every position of an 8k prompt would be gigabytes); top-1 agreement uses our argmax over the
// whole vocabulary.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "engine/checkpoint/safetensors.h"
#include "model_source.h"

namespace fp8lm::cli {

namespace {

struct CompareOptions {
  ModelSourceOptions source;
  std::string reference;
  std::string report;
  double min_cosine = 0.999;
  double min_top1 = 0.99;
  int chunk = 256;  // positions per forward call (bounds host memory for the logits)
};

template <typename T>
Status tensor(const SafetensorsFile& f, const std::string& name, Dtype dtype, int dims, std::span<const T>* out,
              std::vector<std::int64_t>* shape = nullptr) {
  const auto it = f.tensors().find(name);
  if (it == f.tensors().end()) return Status::Error(f.path() + ": missing tensor " + name);
  const TensorView& v = it->second;
  if (v.dtype != dtype || static_cast<int>(v.shape.size()) != dims)
    return Status::Error(f.path() + ": tensor " + name + " is " + dtype_name(v.dtype) + " " + v.shape_string() +
                         ", expected " + dtype_name(dtype) + " with " + std::to_string(dims) + " dimensions");
  *out = std::span<const T>(reinterpret_cast<const T*>(v.data), v.nbytes / sizeof(T));
  if (shape) *shape = v.shape;
  return Status::Ok();
}

struct PromptReport {
  int positions = 0;
  double min_cosine = 1, mean_cosine = 0;
  int top1_agree = 0;
  double worst_disagreement_margin = 0;  // the reference's margin where our top-1 differs (near ties)
  int greedy_steps = 0;
  int greedy_first_divergence = -1;  // -1: identical
  double greedy_reference_margin = 0;  // the reference's top-2 margin at the divergence
};

Status compare_prompt(Qwen3Model& model, const SafetensorsFile& ref, int p, std::span<const std::int32_t> subset,
                      int chunk, PromptReport* r) {
  const std::string pre = "p" + std::to_string(p) + ".";
  std::span<const std::int32_t> ids, top_ids, greedy_ids;
  std::span<const float> top_logits, subset_logits, greedy_margins;
  std::vector<std::int64_t> top_shape;
  FP8LM_RETURN_IF_ERROR(tensor(ref, pre + "ids", Dtype::I32, 1, &ids));
  FP8LM_RETURN_IF_ERROR(tensor(ref, pre + "top_ids", Dtype::I32, 2, &top_ids, &top_shape));
  FP8LM_RETURN_IF_ERROR(tensor(ref, pre + "top_logits", Dtype::F32, 2, &top_logits));
  FP8LM_RETURN_IF_ERROR(tensor(ref, pre + "subset_logits", Dtype::F32, 2, &subset_logits));
  FP8LM_RETURN_IF_ERROR(tensor(ref, pre + "greedy_ids", Dtype::I32, 1, &greedy_ids));
  FP8LM_RETURN_IF_ERROR(tensor(ref, pre + "greedy_margins", Dtype::F32, 1, &greedy_margins));
  const std::size_t T = ids.size(), K = static_cast<std::size_t>(top_shape[1]), S = subset.size();
  if (top_ids.size() != T * K || subset_logits.size() != T * S || greedy_margins.size() != greedy_ids.size())
    return Status::Error(ref.path() + ": prompt " + std::to_string(p) + " tensors have inconsistent shapes");
  const int vocab = model.config().vocab_size;
  for (std::int32_t id : top_ids)
    if (id < 0 || id >= vocab) return Status::Error(ref.path() + ": top id " + std::to_string(id) + " outside the vocabulary");
  for (std::int32_t id : subset)
    if (id < 0 || id >= vocab) return Status::Error(ref.path() + ": subset id " + std::to_string(id) + " outside the vocabulary");

  model.reset();
  r->positions = static_cast<int>(T);
  double cos_sum = 0;
  std::vector<float> logits;
  std::vector<char> counted(vocab, 0);  // ids already in this position's cosine
  for (std::size_t begin = 0; begin < T; begin += chunk) {
    const std::size_t count = std::min<std::size_t>(chunk, T - begin);
    FP8LM_RETURN_IF_ERROR(model.forward(ids.subspan(begin, count), true, &logits));
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t t = begin + i;
      const float* ours = logits.data() + i * vocab;
      // Cosine over subset + the reference's top-K (each id once).
      double dot = 0, nr = 0, no = 0;
      auto accumulate = [&](std::int32_t id, double ref_value) {
        if (counted[id]) return;
        counted[id] = 1;
        dot += ref_value * ours[id];
        nr += ref_value * ref_value;
        no += static_cast<double>(ours[id]) * ours[id];
      };
      for (std::size_t k = 0; k < K; ++k) accumulate(top_ids[t * K + k], top_logits[t * K + k]);
      for (std::size_t s = 0; s < S; ++s) accumulate(subset[s], subset_logits[t * S + s]);
      for (std::size_t k = 0; k < K; ++k) counted[top_ids[t * K + k]] = 0;
      for (std::size_t s = 0; s < S; ++s) counted[subset[s]] = 0;
      const double cosine = dot / std::sqrt(std::max(nr * no, 1e-300));
      r->min_cosine = std::min(r->min_cosine, cosine);
      cos_sum += cosine;
      const std::int32_t our_top = static_cast<std::int32_t>(std::max_element(ours, ours + vocab) - ours);
      if (our_top == top_ids[t * K]) {
        ++r->top1_agree;
      } else {
        // How close the reference itself was between its top-1 and ours (if ours is in its top-K).
        double margin = top_logits[t * K] - top_logits[t * K + K - 1];
        for (std::size_t k = 1; k < K; ++k)
          if (top_ids[t * K + k] == our_top) margin = top_logits[t * K] - top_logits[t * K + k];
        r->worst_disagreement_margin = std::max(r->worst_disagreement_margin, margin);
      }
    }
  }
  r->mean_cosine = cos_sum / std::max<std::size_t>(T, 1);

  // Greedy continuation, token by token from the reference's own prefix (so a divergence is
  // reported once, at the first step where our argmax differs).
  r->greedy_steps = static_cast<int>(greedy_ids.size());
  std::int32_t next = 0;
  for (std::size_t g = 0; g < greedy_ids.size(); ++g) {
    if (g == 0) {
      model.reset();
      std::vector<float> last;
      for (std::size_t begin = 0; begin < T; begin += chunk)
        FP8LM_RETURN_IF_ERROR(model.forward(ids.subspan(begin, std::min<std::size_t>(chunk, T - begin)), false, &last));
      logits = std::move(last);
    } else {
      FP8LM_RETURN_IF_ERROR(model.forward(std::span<const std::int32_t>(&greedy_ids[g - 1], 1), false, &logits));
    }
    next = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (next != greedy_ids[g] && r->greedy_first_divergence < 0) {
      r->greedy_first_divergence = static_cast<int>(g);
      r->greedy_reference_margin = greedy_margins[g];
    }
  }
  return Status::Ok();
}

Status run(const CompareOptions& o) {
  std::unique_ptr<SafetensorsFile> ref;
  FP8LM_RETURN_IF_ERROR(SafetensorsFile::open(o.reference, &ref));
  std::span<const std::int32_t> subset;
  FP8LM_RETURN_IF_ERROR(tensor(*ref, "subset_ids", Dtype::I32, 1, &subset));
  int prompts = 0;
  while (ref->tensors().count("p" + std::to_string(prompts) + ".ids")) ++prompts;
  if (prompts == 0) return Status::Error(o.reference + ": no prompts (tensors p0.ids, p1.ids, ...)");

  LoadedModel m;
  FP8LM_RETURN_IF_ERROR(load_model(o.source, &m));
  fmt::print("{} vs {}\n", m.description, o.reference);
  fmt::print("| prompt | tokens | min cosine | mean cosine | top-1 agreement | worst ref. margin at a disagreement | greedy: first divergence (ref. margin) |\n|---|---|---|---|---|---|---|\n");
  nlohmann::json report = nlohmann::json::array();
  bool pass = true;
  for (int p = 0; p < prompts; ++p) {
    PromptReport r;
    FP8LM_RETURN_IF_ERROR(compare_prompt(*m.model, *ref, p, subset, o.chunk, &r));
    const double top1 = r.positions ? double(r.top1_agree) / r.positions : 1.0;
    const bool ok = r.min_cosine >= o.min_cosine && top1 >= o.min_top1;
    pass &= ok;
    const std::string greedy = r.greedy_first_divergence < 0
                                   ? fmt::format("identical ({} tokens)", r.greedy_steps)
                                   : fmt::format("step {} of {} ({:.3f})", r.greedy_first_divergence, r.greedy_steps,
                                                 r.greedy_reference_margin);
    fmt::print("| {} | {} | {:.6f} | {:.6f} | {:.2f}% | {:.3f} | {} |{}\n", p, r.positions, r.min_cosine, r.mean_cosine,
               100 * top1, r.worst_disagreement_margin, greedy, ok ? "" : " FAIL");
    report.push_back({{"prompt", p}, {"tokens", r.positions}, {"min_cosine", r.min_cosine}, {"mean_cosine", r.mean_cosine},
                      {"top1_agreement", top1}, {"worst_disagreement_margin", r.worst_disagreement_margin},
                      {"greedy_steps", r.greedy_steps}, {"greedy_first_divergence", r.greedy_first_divergence},
                      {"greedy_reference_margin", r.greedy_reference_margin}, {"pass", ok}});
  }
  if (!o.report.empty())
    std::ofstream(o.report) << nlohmann::json{{"model", m.description}, {"reference", o.reference}, {"prompts", report}}.dump(1)
                            << "\n";
  fmt::print("compare-reference: {} (thresholds: min cosine {}, top-1 {}%)\n", pass ? "PASS" : "FAIL", o.min_cosine,
             100 * o.min_top1);
  return pass ? Status::Ok() : Status::Error("the model disagrees with the reference beyond the thresholds");
}

}  // namespace

void add_compare_reference_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<CompareOptions>();
  CLI::App* cmd = app.add_subcommand(
      "compare-reference", "Compare logits and greedy tokens with a transformers reference (tests/reference/)");
  add_model_source_options(cmd, &o->source);
  cmd->add_option("--reference", o->reference, "Reference file from tests/reference/qwen3_reference.py")->required();
  cmd->add_option("--report", o->report, "Also write the results as JSON here");
  cmd->add_option("--min-cosine", o->min_cosine, "Smallest acceptable per-position cosine")->capture_default_str();
  cmd->add_option("--min-top1", o->min_top1, "Smallest acceptable top-1 agreement (fraction)")->capture_default_str();
  cmd->callback([&exit_code, o] {
    const Status s = run(*o);
    if (!s.ok()) fmt::print(stderr, "fp8lm compare-reference: {}\n", s.message());
    exit_code = s.ok() ? 0 : 1;
  });
}

}  // namespace fp8lm::cli
