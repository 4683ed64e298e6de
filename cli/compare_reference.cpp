// `fp8lm compare-reference`: runs the model on the prompts stored in a reference file (written by
// tests/reference/qwen3_reference.py from transformers, or by `fp8lm write-reference` from one of
// fp8lm's backends; the format is in reference_file.h) and compares, position by position, the
// logits and a greedy continuation.
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
#include "model_source.h"
#include "reference_file.h"

namespace fp8lm::cli {

namespace {

struct CompareOptions {
  ModelSourceOptions source;
  std::string reference;
  std::string report;
  double min_cosine = 0.999;
  double min_top1 = 0.99;
};

struct PromptReport {
  int positions = 0;
  double min_cosine = 1, mean_cosine = 0;
  int top1_agree = 0;
  double worst_disagreement_margin = 0;  // the reference's margin where our top-1 differs (near ties)
  int greedy_steps = 0;
  int greedy_first_divergence = -1;  // -1: identical
  double greedy_reference_margin = 0;  // the reference's top-2 margin at the divergence
};

Status compare_prompt(Qwen3Model& model, const ReferencePrompts& ref, int p, PromptReport* r) {
  const SafetensorsFile& f = *ref.file;
  const std::string pre = "p" + std::to_string(p) + ".";
  const std::span<const std::int32_t> ids = ref.prompts[p], subset = ref.subset;
  std::span<const std::int32_t> top_ids, greedy_ids;
  std::span<const float> top_logits, subset_logits, greedy_margins;
  std::vector<std::int64_t> top_shape;
  FP8LM_RETURN_IF_ERROR(reference_tensor(f, pre + "top_ids", Dtype::I32, 2, &top_ids, &top_shape));
  FP8LM_RETURN_IF_ERROR(reference_tensor(f, pre + "top_logits", Dtype::F32, 2, &top_logits));
  FP8LM_RETURN_IF_ERROR(reference_tensor(f, pre + "subset_logits", Dtype::F32, 2, &subset_logits));
  FP8LM_RETURN_IF_ERROR(reference_tensor(f, pre + "greedy_ids", Dtype::I32, 1, &greedy_ids));
  FP8LM_RETURN_IF_ERROR(reference_tensor(f, pre + "greedy_margins", Dtype::F32, 1, &greedy_margins));
  const std::size_t T = ids.size(), K = static_cast<std::size_t>(top_shape[1]), S = subset.size();
  if (top_ids.size() != T * K || subset_logits.size() != T * S || greedy_margins.size() != greedy_ids.size())
    return Status::Error(f.path() + ": prompt " + std::to_string(p) + " tensors have inconsistent shapes");
  const int vocab = model.config().vocab_size;
  for (std::int32_t id : top_ids)
    if (id < 0 || id >= vocab) return Status::Error(f.path() + ": top id " + std::to_string(id) + " outside the vocabulary");

  r->positions = static_cast<int>(T);
  double cos_sum = 0;
  std::vector<char> counted(vocab, 0);  // ids already in this position's cosine
  // Every position's logits, then the greedy continuation, token by token from the reference's own
  // prefix (so a divergence is reported once, at the first step where our argmax differs).
  r->greedy_steps = static_cast<int>(greedy_ids.size());
  const auto on_position = [&](std::size_t t, const float* ours) {
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
  };
  const auto next = [&](int g, std::span<const float> logits) {
    const auto ours = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (ours != greedy_ids[g] && r->greedy_first_divergence < 0) {
      r->greedy_first_divergence = g;
      r->greedy_reference_margin = greedy_margins[g];
    }
    return greedy_ids[g];
  };
  FP8LM_RETURN_IF_ERROR(run_reference_prompt(model, ids, on_position, r->greedy_steps, next));
  r->mean_cosine = cos_sum / std::max<std::size_t>(T, 1);
  return Status::Ok();
}

Status run(const CompareOptions& o) {
  ReferencePrompts ref;
  FP8LM_RETURN_IF_ERROR(ReferencePrompts::open(o.reference, &ref));
  LoadedModel m;
  FP8LM_RETURN_IF_ERROR(load_model(o.source, &m));
  // Each prompt's greedy length is its own (p{p}.greedy_ids); the model reports a greedy
  // continuation that outgrows the context when it happens.
  FP8LM_RETURN_IF_ERROR(ref.check_fits(*m.model, 0));
  fmt::print("{} vs {}\n", m.description, o.reference);
  fmt::print("| prompt | tokens | min cosine | mean cosine | top-1 agreement | worst ref. margin at a disagreement | greedy: first divergence (ref. margin) |\n|---|---|---|---|---|---|---|\n");
  nlohmann::json report = nlohmann::json::array();
  bool pass = true;
  for (int p = 0; p < static_cast<int>(ref.prompts.size()); ++p) {
    PromptReport r;
    FP8LM_RETURN_IF_ERROR(compare_prompt(*m.model, ref, p, &r));
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
    std::ofstream(o.report) << nlohmann::json{{"model", m.description}, {"reference", o.reference},
                                           {"reference_metadata", ref.file->metadata()}, {"prompts", report}}
                                .dump(1)
                            << "\n";
  fmt::print("compare-reference: {} (thresholds: min cosine {}, top-1 {}%)\n", pass ? "PASS" : "FAIL", o.min_cosine,
             100 * o.min_top1);
  return pass ? Status::Ok() : Status::Error("the model disagrees with the reference beyond the thresholds");
}

}  // namespace

void add_compare_reference_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<CompareOptions>();
  CLI::App* cmd = app.add_subcommand(
      "compare-reference", "Compare logits and greedy tokens with a reference file (transformers: tests/reference/; fp8lm: write-reference)");
  add_model_source_options(cmd, &o->source);
  cmd->add_option("--reference", o->reference, "Reference file from tests/reference/qwen3_reference.py or fp8lm write-reference")->required();
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
