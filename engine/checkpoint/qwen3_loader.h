// Loading a Hugging Face Qwen3 checkpoint folder (config.json, generation_config.json, safetensors)
// into Qwen3Weights.
//
// - FP8 checkpoints (quantization_config fp8, e4m3, dynamic, [128, 128]): each `*_proj.weight`
//   F8_E4M3 [N, K] comes with `*_proj.weight_scale_inv` [ceil(N/128), ceil(K/128)] in BF16, F16 or
//   F32, converted to fp32 (the value multiplies the codes despite its name). q/k/v and gate/up are
//   fused by stacking rows and scale rows, which needs every part but the last to have a multiple of
//   128 rows (true of all Qwen3 models); otherwise the load fails with a message.
// - Plain checkpoints (no quantization_config) and linears listed in modules_to_not_convert: BF16,
//   F16 or F32 weights, quantized blockwise as cpu::quantize_weight_blockwise would quantize the
//   fused fp32 matrix (bit for bit), 128x128 block by block from the mapped file on all threads.
// - Embeddings, norms and lm_head: BF16 (F16 and F32 are converted).
// - Every tensor's name, dtype and shape is checked against config.json before anything is copied.
//   A tensor fp8lm does not expect is an error (it would mean a model fp8lm computes differently),
//   except lm_head.weight in a tied model, which transformers ignores too. generation_config.json is
//   optional (GenerationConfig's defaults).
// - On error `out` is untouched; every message names the file and the tensor or field.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "engine/model/qwen3_weights.h"
#include "fp8lm/status.h"

namespace fp8lm {

struct LoadProgressInfo {
  int layers_done = 0;
  int layers_total = 0;
  std::uint64_t bytes_done = 0;   // checkpoint bytes read so far
  std::uint64_t bytes_total = 0;  // checkpoint bytes to read
  double seconds = 0;
  bool finished = false;  // the last call, after a successful load
};
// Called (serialised) as tensors are loaded, at least once with finished = true on success.
using LoadProgress = std::function<void(const LoadProgressInfo&)>;

// Progress lines on stderr at most once a second while loading, and a final line with the time and
// GB/s: "loaded DIR: 8.81 GB in 3.2 s (2.75 GB/s)".
LoadProgress stderr_load_progress(const std::string& what);

Status load_qwen3(const std::string& dir, Qwen3Weights* out, const LoadProgress& progress = nullptr);

}  // namespace fp8lm
