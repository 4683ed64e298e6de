// Random Qwen3 weights created directly in memory ("--load-format dummy", and what make-checkpoint
// writes): drawn like a freshly initialised model so activations stay in a realistic range.
//
// Every weight is N(0, 0.02) (config.json's initializer_range), norms are 1. A linear's weights are
// quantized blockwise like a real FP8 checkpoint: scale = bf16(amax / 448) (BF16, as stored in the
// official files, so a written checkpoint loads back bit-exactly), codes = fp8(w / scale).
//
// Speed (the 32B preset is 33 GB): the normal draws are the 65536 quantiles of N(0, 1) picked by
// 16-bit random numbers, so a block's amax is set by its most extreme pick; the FP8 codes of the
// usual amax values are precomputed tables, which turns quantization into a table lookup.
//
// Determinism: each 128x128 block (each 64K-element chunk of a BF16 tensor) has its own random
// stream, seeded from the seed, the tensor's official name and the block index; results do not depend
// on the thread count or the machine.
#pragma once

#include <cstdint>
#include <string>

#include "engine/model/qwen3_weights.h"
#include "fp8lm/status.h"

namespace fp8lm {

inline constexpr float kInitializerRange = 0.02f;

// Dense and MoE models (the router is drawn like a linear, in BF16). `out` is untouched on error.
Status make_dummy_qwen3(const Qwen3Config& config, std::uint64_t seed, Qwen3Weights* out);
// The same for a preset name (see qwen3_presets.h).
Status make_dummy_qwen3(const std::string& preset, std::uint64_t seed, Qwen3Weights* out);

}  // namespace fp8lm
