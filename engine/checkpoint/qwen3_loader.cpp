#include "engine/checkpoint/qwen3_loader.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>

#include "engine/checkpoint/fp8_decode_table.h"
#include "fp8lm/parallel.h"
#include "engine/checkpoint/qwen3_config_json.h"
#include "engine/checkpoint/qwen3_tensor_names.h"
#include "engine/checkpoint/safetensors.h"
#include "fp8lm/cpu.h"

namespace fp8lm {

namespace {

using Clock = std::chrono::steady_clock;

float half_to_float(std::uint16_t h) {
  const int exp = (h >> 10) & 0x1F, man = h & 0x3FF;
  const float sign = (h & 0x8000) ? -1.0f : 1.0f;
  if (exp == 0) return sign * std::ldexp(static_cast<float>(man), -24);
  if (exp == 31) return man ? std::nanf("") : sign * INFINITY;
  return sign * std::ldexp(static_cast<float>(1024 + man), exp - 25);
}

// Element i of a BF16, F16 or F32 tensor as float (the data may be unaligned).
float element(const TensorView& t, std::size_t i) {
  if (t.dtype == Dtype::F32) {
    float f;
    std::memcpy(&f, t.data + 4 * i, 4);
    return f;
  }
  std::uint16_t h;
  std::memcpy(&h, t.data + 2 * i, 2);
  return t.dtype == Dtype::BF16 ? bf16_to_float(bf16{h}) : half_to_float(h);
}

bool is_float_dtype(Dtype d) { return d == Dtype::BF16 || d == Dtype::F16 || d == Dtype::F32; }

// One checkpoint linear of a fused linear: its weight and, when FP8, its scales.
struct PartPlan {
  const TensorView* weight = nullptr;
  const TensorView* scales = nullptr;
};
struct LinearPlan {
  const FusedLinearSpec* spec = nullptr;
  std::vector<PartPlan> parts;
  bool fp8() const {
    for (const PartPlan& p : parts)
      if (p.scales == nullptr) return false;
    return true;
  }
};

// Looks tensors up, checks them against the config and remembers which names were used.
class Checker {
 public:
  Checker(const SafetensorsCheckpoint& ckpt, const std::string& dir, const Qwen3Config& config)
      : ckpt_(ckpt), dir_(dir), config_(config) {}

  Status find(const std::string& name, const std::vector<std::int64_t>& shape, bool allow_fp8,
              const TensorView** out) {
    const TensorView* t = ckpt_.find(name);
    if (t == nullptr) return Status::Error(dir_ + ": missing tensor " + name);
    used_.insert(name);
    const bool ok_dtype = is_float_dtype(t->dtype) || (allow_fp8 && t->dtype == Dtype::F8_E4M3);
    if (!ok_dtype) {
      std::string expected = allow_fp8 ? "F8_E4M3 (with weight_scale_inv), BF16, F16 or F32" : "BF16, F16 or F32";
      if (t->dtype == Dtype::F8_E4M3 && !config_.fp8 && name.ends_with(kWeightSuffix))
        expected += " (F8_E4M3 needs a quantization_config in config.json)";
      return Status::Error(*t->file + ": tensor " + name + " has dtype " + dtype_name(t->dtype) + ", expected " +
                           expected);
    }
    if (t->shape != shape)
      return Status::Error(*t->file + ": tensor " + name + " has shape " + t->shape_string() + ", expected " +
                           shape_to_string(shape) + " (from config.json)");
    *out = t;
    return Status::Ok();
  }

  Status part(int layer, const LinearPart& part, int k, PartPlan* out) {
    const std::string module = layer_module(layer, part.module);
    FP8LM_RETURN_IF_ERROR(find(module + kWeightSuffix, {part.rows, k}, config_.fp8, &out->weight));
    if (out->weight->dtype != Dtype::F8_E4M3) return Status::Ok();
    const std::string scale_name = module + kScaleSuffix;
    if (ckpt_.find(scale_name) == nullptr)
      return Status::Error(*out->weight->file + ": tensor " + module + kWeightSuffix + " is F8_E4M3 but " +
                           scale_name + " is missing");
    return find(scale_name, {ceil_div(part.rows, kQuantGroup), ceil_div(k, kQuantGroup)}, false, &out->scales);
  }

  // Everything in the checkpoint that no check asked for.
  Status no_extra_tensors() const {
    for (const auto& [name, view] : ckpt_.tensors()) {
      if (used_.count(name)) continue;
      if (name == kLmHead && config_.tie_word_embeddings) continue;  // tied: embed_tokens is the output layer
      return Status::Error(*view->file + ": unexpected tensor " + name + " (" + dtype_name(view->dtype) + " " +
                           view->shape_string() + ") for a " + config_.model_type + " model with " +
                           std::to_string(config_.num_hidden_layers) + " layers" +
                           (config_.tie_word_embeddings ? ", tied embeddings" : ""));
    }
    return Status::Ok();
  }

 private:
  const SafetensorsCheckpoint& ckpt_;
  const std::string& dir_;
  const Qwen3Config& config_;
  std::set<std::string> used_;
};

void copy_bf16(const TensorView& t, std::vector<bf16>* out) {
  out->resize(static_cast<std::size_t>(t.numel()));
  if (t.dtype == Dtype::BF16) {
    std::memcpy(out->data(), t.data, t.nbytes);
    return;
  }
  for (std::size_t i = 0; i < out->size(); ++i) (*out)[i] = float_to_bf16(element(t, i));
}

Status check_scales_finite(const TensorView& s) {
  for (std::size_t i = 0; i < static_cast<std::size_t>(s.numel()); ++i)
    if (!std::isfinite(element(s, i)))
      return Status::Error(*s.file + ": tensor " + s.name + " has a non-finite scale at element " + std::to_string(i));
  return Status::Ok();
}

// FP8 parts: rows and scale rows stacked as they are.
Status fuse_fp8(const LinearPlan& plan, Fp8Linear* out) {
  const int k = plan.spec->k, kb = ceil_div(k, kQuantGroup);
  std::size_t row = 0;
  for (std::size_t p = 0; p < plan.parts.size(); ++p) {
    const PartPlan& part = plan.parts[p];
    if (row % kQuantGroup != 0)
      return Status::Error(*part.weight->file + ": cannot fuse " + part.weight->name + " after " +
                           std::to_string(row) + " rows, not a multiple of 128 (FP8 block scales would straddle)");
    FP8LM_RETURN_IF_ERROR(check_scales_finite(*part.scales));
    std::memcpy(out->weight.data() + row * k, part.weight->data, part.weight->nbytes);
    float* scales = out->scales.data() + row / kQuantGroup * kb;
    for (std::size_t i = 0; i < static_cast<std::size_t>(part.scales->numel()); ++i)
      scales[i] = element(*part.scales, i);
    row += static_cast<std::size_t>(part.weight->shape[0]);
  }
  return Status::Ok();
}

// Any part not FP8: stack every part as float (FP8 ones dequantized), then quantize the whole.
Status fuse_and_quantize(const LinearPlan& plan, Fp8Linear* out) {
  const int k = plan.spec->k, kb = ceil_div(k, kQuantGroup);
  std::vector<float> w(out->weight.size());
  std::size_t row = 0;
  for (const PartPlan& part : plan.parts) {
    const std::size_t rows = static_cast<std::size_t>(part.weight->shape[0]);
    float* dst = w.data() + row * k;
    if (part.scales == nullptr) {
      for (std::size_t i = 0; i < rows * k; ++i) dst[i] = element(*part.weight, i);
    } else {
      FP8LM_RETURN_IF_ERROR(check_scales_finite(*part.scales));
      const std::array<float, 256>& decode = fp8_decode_table();
      for (std::size_t r = 0; r < rows; ++r)
        for (int c = 0; c < k; ++c) {
          const float s = element(*part.scales, r / kQuantGroup * kb + c / kQuantGroup);
          dst[r * k + c] = decode[static_cast<std::uint8_t>(part.weight->data[r * k + c])] * s;
        }
    }
    row += rows;
  }
  return cpu::quantize_weight_blockwise(w.data(), out->n, out->k, out->weight.data(), out->scales.data());
}

Status load_linear(const LinearPlan& plan, Fp8Linear* out) {
  out->n = plan.spec->n();
  out->k = plan.spec->k;
  out->weight.resize(static_cast<std::size_t>(out->n) * out->k);
  out->scales.resize(static_cast<std::size_t>(ceil_div(out->n, kQuantGroup)) * ceil_div(out->k, kQuantGroup));
  return plan.fp8() ? fuse_fp8(plan, out) : fuse_and_quantize(plan, out);
}

std::uint64_t plan_bytes(const LinearPlan& plan) {
  std::uint64_t n = 0;
  for (const PartPlan& p : plan.parts) n += p.weight->nbytes + (p.scales ? p.scales->nbytes : 0);
  return n;
}

}  // namespace

LoadProgress stderr_load_progress(const std::string& what) {
  auto last_print = std::make_shared<double>(0.0);
  return [what, last_print](const LoadProgressInfo& p) {
    const double gb = p.bytes_done / 1e9, rate = p.seconds > 0 ? gb / p.seconds : 0.0;
    if (p.finished) {
      std::fprintf(stderr, "loaded %s: %.2f GB in %.2f s (%.2f GB/s)\n", what.c_str(), gb, p.seconds, rate);
    } else if (p.seconds - *last_print >= 1.0) {
      *last_print = p.seconds;
      std::fprintf(stderr, "loading %s: %d/%d layers, %.2f/%.2f GB, %.2f GB/s\n", what.c_str(), p.layers_done,
                   p.layers_total, gb, p.bytes_total / 1e9, rate);
    }
  };
}

Status load_qwen3(const std::string& dir, Qwen3Weights* out, const LoadProgress& progress) {
  namespace fs = std::filesystem;
  const Clock::time_point start = Clock::now();
  auto w = std::make_unique<Qwen3Weights>();
  FP8LM_RETURN_IF_ERROR(read_qwen3_config((fs::path(dir) / "config.json").string(), &w->config));
  const Qwen3Config& c = w->config;
  const fs::path gen_path = fs::path(dir) / "generation_config.json";
  std::error_code ec;
  if (fs::exists(gen_path, ec)) FP8LM_RETURN_IF_ERROR(read_generation_config(gen_path.string(), &w->generation));

  SafetensorsCheckpoint ckpt;
  FP8LM_RETURN_IF_ERROR(SafetensorsCheckpoint::open(dir, &ckpt));

  // Check everything before copying anything.
  Checker check(ckpt, dir, c);
  const std::int64_t vocab = c.vocab_size, hidden = c.hidden_size;
  const TensorView *embed = nullptr, *norm = nullptr, *lm_head = nullptr;
  FP8LM_RETURN_IF_ERROR(check.find(kEmbedTokens, {vocab, hidden}, false, &embed));
  FP8LM_RETURN_IF_ERROR(check.find(kFinalNorm, {hidden}, false, &norm));
  if (!c.tie_word_embeddings) FP8LM_RETURN_IF_ERROR(check.find(kLmHead, {vocab, hidden}, false, &lm_head));
  const std::vector<LayerNormSpec> norms = qwen3_layer_norms(c);
  std::vector<std::vector<FusedLinearSpec>> linears(c.num_hidden_layers);
  std::vector<std::vector<LinearPlan>> layer_linears(c.num_hidden_layers);
  std::vector<std::vector<const TensorView*>> layer_norms(c.num_hidden_layers);
  std::vector<const TensorView*> routers(c.num_hidden_layers, nullptr);
  std::uint64_t total = embed->nbytes + norm->nbytes + (lm_head ? lm_head->nbytes : 0);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    for (const LayerNormSpec& n : norms) {
      const TensorView* t = nullptr;
      FP8LM_RETURN_IF_ERROR(check.find(layer_module(i, n.module) + kWeightSuffix, {n.size}, false, &t));
      layer_norms[i].push_back(t);
      total += t->nbytes;
    }
    if (c.is_moe_layer(i)) {
      FP8LM_RETURN_IF_ERROR(check.find(layer_module(i, kRouterModule) + kWeightSuffix, {c.num_experts, hidden}, false,
                                       &routers[i]));
      total += routers[i]->nbytes;
    }
    linears[i] = qwen3_layer_linears(c, i);
    for (const FusedLinearSpec& spec : linears[i]) {
      LinearPlan plan{&spec, std::vector<PartPlan>(spec.parts.size())};
      for (std::size_t p = 0; p < spec.parts.size(); ++p)
        FP8LM_RETURN_IF_ERROR(check.part(i, spec.parts[p], spec.k, &plan.parts[p]));
      total += plan_bytes(plan);
      layer_linears[i].push_back(std::move(plan));
    }
  }
  FP8LM_RETURN_IF_ERROR(check.no_extra_tensors());

  // Copy: one job per layer plus one per big tensor, on all threads.
  std::mutex mu;
  LoadProgressInfo info;
  info.layers_total = c.num_hidden_layers;
  info.bytes_total = total;
  auto report = [&](std::uint64_t bytes, bool layer_done) {
    std::lock_guard<std::mutex> lock(mu);
    info.bytes_done += bytes;
    info.layers_done += layer_done;
    info.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (progress) progress(info);
  };
  w->layers.resize(c.num_hidden_layers);
  std::vector<Status> errors(c.num_hidden_layers, Status::Ok());
  parallel_for_each(c.num_hidden_layers + 2, [&](std::size_t job) {
    if (job == 0) {
      copy_bf16(*embed, &w->embed_tokens);
      copy_bf16(*norm, &w->norm);
      report(embed->nbytes + norm->nbytes, false);
      return;
    }
    if (job == 1) {
      if (lm_head) copy_bf16(*lm_head, &w->lm_head);
      report(lm_head ? lm_head->nbytes : 0, false);
      return;
    }
    const std::size_t i = job - 2;
    Qwen3LayerWeights& layer = w->layers[i];
    std::uint64_t bytes = 0;
    for (std::size_t n = 0; n < norms.size(); ++n) {
      copy_bf16(*layer_norms[i][n], &(layer.*norms[n].member));
      bytes += layer_norms[i][n]->nbytes;
    }
    if (routers[i]) {
      copy_bf16(*routers[i], &layer.moe.router);
      layer.moe.experts.resize(c.num_experts);
      bytes += routers[i]->nbytes;
    }
    report(bytes, false);
    for (const LinearPlan& plan : layer_linears[i]) {
      const Status st = load_linear(plan, &plan.spec->of(layer));
      if (!st.ok()) {
        errors[i] = st;
        break;
      }
      report(plan_bytes(plan), false);
    }
    report(0, true);
  });
  for (const Status& st : errors) FP8LM_RETURN_IF_ERROR(st);
  info.finished = true;
  info.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (progress) progress(info);
  *out = std::move(*w);
  return Status::Ok();
}

}  // namespace fp8lm
