// Reference files: what tests/reference/qwen3_reference.py (transformers) and `fp8lm write-reference`
// (fp8lm itself, on one backend) write and `fp8lm compare-reference` reads. A safetensors file with,
// for each prompt p = 0, 1, ...:
//   p{p}.ids            I32 [T]       the prompt
//   p{p}.top_ids        I32 [T, K]    the K largest logits per position, descending
//   p{p}.top_logits     F32 [T, K]
//   p{p}.subset_logits  F32 [T, S]    logits of the fixed vocabulary subset `subset_ids`
//   p{p}.greedy_ids     I32 [G]       greedy continuation of the prompt
//   p{p}.greedy_margins F32 [G]       top-1 minus top-2 logit at each greedy step
//   subset_ids          I32 [S]       a fixed random subset of the vocabulary
// and string metadata saying what produced it. The helpers below are the parts both commands
// share, so that a file written by fp8lm is computed exactly as compare-reference recomputes it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/checkpoint/safetensors.h"
#include "engine/model/qwen3_model.h"
#include "fp8lm/status.h"

namespace fp8lm::cli {

// Positions per forward call when all logits are needed (bounds host memory: 256 x 151936 fp32 is
// 155 MB). Both commands use it so that they run the same chunks.
inline constexpr int kReferenceChunkTokens = 256;

// Tensor `name` of `f` as a span of T, checked to be `dtype` with `dims` dimensions; errors name
// the file and the tensor.
template <typename T>
Status reference_tensor(const SafetensorsFile& f, const std::string& name, Dtype dtype, int dims,
                        std::span<const T>* out, std::vector<std::int64_t>* shape = nullptr) {
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

// The prompts and the vocabulary subset of a reference file (views into the mapped file).
struct ReferencePrompts {
  std::unique_ptr<SafetensorsFile> file;
  std::span<const std::int32_t> subset;               // subset_ids
  std::vector<std::span<const std::int32_t>> prompts;  // p0.ids, p1.ids, ... (each non-empty)

  // Opens `path` and reads subset_ids and the prompts; errors name the file and the tensor.
  static Status open(const std::string& path, ReferencePrompts* out);
  // Every id (prompts and subset) inside the model's vocabulary, and every prompt followed by
  // `greedy_steps` greedy steps (which feed greedy_steps - 1 tokens) within the model's context.
  Status check_fits(const Qwen3Model& model, int greedy_steps) const;
};

// Runs `ids` from an empty sequence and calls on_position(t, logits of position t [vocab]) for
// every position t; then the teacher-forced greedy continuation: for g = 0 .. greedy_steps - 1,
// next(g, logits of the last position fed) and the token it returns is fed (except after the last
// step). The prompt is run once for both.
Status run_reference_prompt(Qwen3Model& model, std::span<const std::int32_t> ids,
                            const std::function<void(std::size_t t, const float* logits)>& on_position,
                            int greedy_steps,
                            const std::function<std::int32_t(int g, std::span<const float> logits)>& next);

}  // namespace fp8lm::cli
