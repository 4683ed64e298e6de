#include "engine/checkpoint/qwen3_loader.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <utility>

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

// Elements [first, first + n) of a BF16, F16 or F32 tensor as floats. The data may be unaligned
// (memcpy); one loop per dtype, so that the BF16 one vectorises.
void to_float(const TensorView& t, std::size_t first, std::size_t n, float* dst) {
  switch (t.dtype) {
    case Dtype::F32:
      std::memcpy(dst, t.data + 4 * first, 4 * n);
      return;
    case Dtype::BF16:
      for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, t.data + 2 * (first + i), 2);
        dst[i] = bf16_to_float(bf16{h});
      }
      return;
    default:  // F16: Checker::find admits no other dtype here
      for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, t.data + 2 * (first + i), 2);
        dst[i] = half_to_float(h);
      }
  }
}

float element(const TensorView& t, std::size_t i) {
  float f;
  to_float(t, i, 1, &f);
  return f;
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

// Scales are checked while checking the checkpoint (they are tiny: one per 16384 weights), so that
// the copy that follows cannot fail halfway.
Status check_scales_finite(const TensorView& s) {
  for (std::size_t i = 0; i < static_cast<std::size_t>(s.numel()); ++i)
    if (!std::isfinite(element(s, i)))
      return Status::Error(*s.file + ": tensor " + s.name + " has a non-finite scale at element " + std::to_string(i));
  return Status::Ok();
}

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
    FP8LM_RETURN_IF_ERROR(
        find(scale_name, {ceil_div(part.rows, kQuantGroup), ceil_div(k, kQuantGroup)}, false, &out->scales));
    return check_scales_finite(*out->scales);
  }

  // Stacking FP8 parts keeps their block scales only if every part but the last fills whole blocks.
  static Status check_fp8_fusion(const LinearPlan& plan) {
    std::int64_t row = 0;
    for (const PartPlan& part : plan.parts) {
      if (row % kQuantGroup != 0)
        return Status::Error(*part.weight->file + ": cannot fuse " + part.weight->name + " after " +
                             std::to_string(row) + " rows, not a multiple of 128 (FP8 block scales would straddle)");
      row += part.weight->shape[0];
    }
    return Status::Ok();
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

// Elements [first, first + n) of a BF16, F16 or F32 tensor as BF16.
void copy_bf16(const TensorView& t, std::size_t first, std::size_t n, bf16* dst) {
  if (t.dtype == Dtype::BF16) {
    std::memcpy(dst, t.data + 2 * first, 2 * n);
    return;
  }
  constexpr std::size_t kChunk = 1024;  // floats converted at a time (to_float's vectorised loops)
  float buf[kChunk];
  for (std::size_t i = 0; i < n; i += kChunk) {
    const std::size_t m = std::min(kChunk, n - i);
    to_float(t, first + i, m, buf);
    for (std::size_t j = 0; j < m; ++j) dst[i + j] = float_to_bf16(buf[j]);
  }
}
void copy_bf16(const TensorView& t, std::vector<bf16>* out) {
  out->resize(static_cast<std::size_t>(t.numel()));
  copy_bf16(t, 0, out->size(), out->data());
}

// One band of a fused linear: rows [band * 128, band * 128 + 128) (fewer in the last), the unit of
// work that the copy hands to a thread.

// FP8 parts: the band's rows and its scale row, copied as they are (check_fp8_fusion made sure a
// band lies within one part).
void copy_fp8_band(const LinearPlan& plan, int band, Fp8Linear* out) {
  const int k = plan.spec->k, kb = ceil_div(k, kQuantGroup);
  const std::int64_t r0 = static_cast<std::int64_t>(band) * kQuantGroup;
  std::int64_t part_begin = 0;
  for (const PartPlan& part : plan.parts) {
    const std::int64_t part_rows = part.weight->shape[0];
    if (r0 < part_begin + part_rows) {
      const std::int64_t local = r0 - part_begin, rows = std::min<std::int64_t>(kQuantGroup, part_rows - local);
      std::memcpy(out->weight.data() + r0 * k, part.weight->data + local * k, static_cast<std::size_t>(rows * k));
      to_float(*part.scales, static_cast<std::size_t>(local / kQuantGroup * kb), kb,
               out->scales.data() + static_cast<std::size_t>(band) * kb);
      return;
    }
    part_begin += part_rows;
  }
}

// Rows [r0, r0 + rows) and columns [c0, c0 + cols) of the fused linear as floats (FP8 parts
// dequantized), into `tile` with row stride kQuantGroup. c0 is a multiple of 128, so an FP8 part's
// row segment has a single scale. Parts need not be 128-row aligned: a band may span two.
void read_tile(const LinearPlan& plan, std::int64_t r0, int rows, int c0, int cols, float* tile) {
  const int k = plan.spec->k, kb = ceil_div(k, kQuantGroup);
  const std::array<float, 256>& decode = fp8_decode_table();
  std::int64_t part_begin = 0;
  for (const PartPlan& part : plan.parts) {
    const std::int64_t part_end = part_begin + part.weight->shape[0];
    for (std::int64_t r = std::max(r0, part_begin); r < std::min(r0 + rows, part_end); ++r) {
      const std::size_t local = static_cast<std::size_t>(r - part_begin);
      float* dst = tile + (r - r0) * kQuantGroup;
      if (part.scales == nullptr) {
        to_float(*part.weight, local * k + c0, cols, dst);
      } else {
        const float s = element(*part.scales, local / kQuantGroup * kb + c0 / kQuantGroup);
        const auto* codes = reinterpret_cast<const std::uint8_t*>(part.weight->data) + local * k + c0;
        for (int c = 0; c < cols; ++c) dst[c] = decode[codes[c]] * s;
      }
    }
    part_begin = part_end;
  }
}

// Any part not FP8: the band's blocks read from the mapped parts into one 128x128 float tile at a
// time and quantized from there (the same arithmetic as cpu::quantize_weight_blockwise on the
// whole fused matrix in float, without materialising it).
void quantize_band(const LinearPlan& plan, int band, Fp8Linear* out) {
  const int k = plan.spec->k, kb = ceil_div(k, kQuantGroup);
  const std::int64_t r0 = static_cast<std::int64_t>(band) * kQuantGroup;
  const int rows = static_cast<int>(std::min<std::int64_t>(kQuantGroup, out->n - r0));
  std::vector<float> tile(kQuantGroup * kQuantGroup);
  for (int b = 0; b < kb; ++b) {
    const int c0 = b * kQuantGroup, cols = std::min(kQuantGroup, k - c0);
    read_tile(plan, r0, rows, c0, cols, tile.data());
    out->scales[static_cast<std::size_t>(band) * kb + b] = cpu::quantize_weight_block(
        tile.data(), rows, cols, kQuantGroup, out->weight.data() + r0 * k + c0, static_cast<std::size_t>(k));
  }
}

void allocate_linear(const LinearPlan& plan, Fp8Linear* out) {
  out->n = plan.spec->n();
  out->k = plan.spec->k;
  out->weight.resize(static_cast<std::size_t>(out->n) * out->k);
  out->scales.resize(static_cast<std::size_t>(ceil_div(out->n, kQuantGroup)) * ceil_div(out->k, kQuantGroup));
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
      if (plan.fp8()) FP8LM_RETURN_IF_ERROR(Checker::check_fp8_fusion(plan));
      total += plan_bytes(plan);
      layer_linears[i].push_back(std::move(plan));
    }
  }
  FP8LM_RETURN_IF_ERROR(check.no_extra_tensors());

  // Allocate (vectors zero-fill, so this too runs on all threads), then copy: the checks above
  // leave nothing that can fail. The copy is cut into small jobs (a 128-row band of a linear, a
  // chunk of the embeddings) handed out to all threads, so it balances on many cores whatever the
  // layer count, and a BF16 linear is quantized 128x128 block by block straight from the mapped
  // file.
  w->layers.resize(c.num_hidden_layers);
  parallel_for_each(c.num_hidden_layers + 2, [&](std::size_t i) {
    if (i == static_cast<std::size_t>(c.num_hidden_layers)) {
      w->embed_tokens.resize(static_cast<std::size_t>(embed->numel()));
    } else if (i == static_cast<std::size_t>(c.num_hidden_layers) + 1) {
      if (lm_head) w->lm_head.resize(static_cast<std::size_t>(lm_head->numel()));
    } else {
      Qwen3LayerWeights& layer = w->layers[i];
      if (routers[i]) layer.moe.experts.resize(c.num_experts);
      for (const LinearPlan& plan : layer_linears[i]) allocate_linear(plan, &plan.spec->of(layer));
    }
  });

  struct Job {
    int layer;             // -1: not part of a layer
    std::uint64_t bytes;   // checkpoint bytes it reads, for the progress report
    std::function<void()> run;
  };
  std::vector<Job> jobs;
  // Embeddings in chunks of this many elements (8 MB of BF16).
  constexpr std::size_t kCopyChunk = std::size_t{1} << 22;
  for (const auto& [src, dst] : {std::pair{embed, &w->embed_tokens}, std::pair{lm_head, &w->lm_head}}) {
    if (src == nullptr) continue;
    const TensorView* t = src;
    bf16* out = dst->data();
    const std::size_t n = dst->size(), elem = dtype_size(t->dtype);
    for (std::size_t first = 0; first < n; first += kCopyChunk) {
      const std::size_t count = std::min(kCopyChunk, n - first);
      jobs.push_back({-1, count * elem, [t, out, first, count] { copy_bf16(*t, first, count, out + first); }});
    }
  }
  jobs.push_back({-1, norm->nbytes, [&] { copy_bf16(*norm, &w->norm); }});
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    Qwen3LayerWeights* layer = &w->layers[i];
    std::uint64_t small_bytes = routers[i] ? routers[i]->nbytes : 0;
    for (const TensorView* t : layer_norms[i]) small_bytes += t->nbytes;
    jobs.push_back({i, small_bytes, [&, layer, i] {
                      for (std::size_t n = 0; n < norms.size(); ++n)
                        copy_bf16(*layer_norms[i][n], &(layer->*norms[n].member));
                      if (routers[i]) copy_bf16(*routers[i], &layer->moe.router);
                    }});
    for (const LinearPlan& plan : layer_linears[i]) {
      Fp8Linear* out = &plan.spec->of(*layer);
      const bool fp8 = plan.fp8();
      const int bands = ceil_div(out->n, kQuantGroup);
      // Each band is credited its share of the linear's bytes; the shares add up to the whole.
      const std::uint64_t bytes = plan_bytes(plan);
      const auto share_before = [&](int band) { return bytes * std::min<std::uint64_t>(band * kQuantGroup, out->n) / out->n; };
      for (int band = 0; band < bands; ++band)
        jobs.push_back({i, share_before(band + 1) - share_before(band), [&plan, out, fp8, band] {
                          if (fp8) {
                            copy_fp8_band(plan, band, out);
                          } else {
                            quantize_band(plan, band, out);
                          }
                        }});
    }
  }

  std::vector<int> jobs_left(c.num_hidden_layers, 0);
  for (const Job& job : jobs)
    if (job.layer >= 0) ++jobs_left[job.layer];
  std::mutex mu;
  LoadProgressInfo info;
  info.layers_total = c.num_hidden_layers;
  info.bytes_total = total;
  parallel_for_each(jobs.size(), [&](std::size_t j) {
    const Job& job = jobs[j];
    job.run();
    std::lock_guard<std::mutex> lock(mu);
    info.bytes_done += job.bytes;
    if (job.layer >= 0 && --jobs_left[job.layer] == 0) ++info.layers_done;
    info.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (progress) progress(info);
  });
  info.finished = true;
  info.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (progress) progress(info);
  *out = std::move(*w);
  return Status::Ok();
}

}  // namespace fp8lm
