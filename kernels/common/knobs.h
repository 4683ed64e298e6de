// The kernels' A/B knobs: environment variables that change a launcher's choice without a rebuild
// (README, "End to end"), each read once per process by the code that uses it. The integer knobs
// are described once here (name, range, default), so that the code reading one and a benchmark
// recording it agree on what a setting did; FP8LM_DECODE_FUSION (a list) is below them.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>

namespace fp8lm {

// An integer knob: a value in [lo, hi] from the environment, else `fallback` (also when the text
// is not an integer or is out of range: a bad setting runs the default, and a result says so).
struct IntKnob {
  const char* name;
  int lo, hi, fallback;
};
inline constexpr IntKnob kPdlKnob{"FP8LM_PDL", 0, 1, 1};                           // programmatic dependent launch
inline constexpr IntKnob kDecodeMaxStagesKnob{"FP8LM_DECODE_MAX_STAGES", 2, 8, 4};  // sm90 decode ring depth
inline constexpr IntKnob kDecodeCtasPerSmKnob{"FP8LM_DECODE_CTAS_PER_SM", 1, 8, 3};  // sm90 decode split-K aim
inline constexpr IntKnob kFlashWgmmaKnob{"FP8LM_FLASH_WGMMA", 0, 1, 1};            // wgmma prefill attention
inline constexpr IntKnob kFlashPSplitKnob{"FP8LM_FLASH_P_SPLIT", 0, 1, 1};         // its P as bf16 hi + lo
inline constexpr IntKnob kGemvMaxMbKnob{"FP8LM_GEMV_MAX_MB", 0, 1 << 20, 9};        // GEMV up to N MB of weights
inline constexpr IntKnob kFlashDecodeKnob{"FP8LM_FLASH_DECODE", 0, 1, 1};          // one-token attention kernel
inline constexpr IntKnob kMoeRouteWarpKnob{"FP8LM_MOE_ROUTE_WARP", 0, 1, 1};        // one token's routing on a warp
inline constexpr IntKnob kGroupedEarlyWeightsKnob{"FP8LM_GROUPED_EARLY_WEIGHTS", 0, 1, 1};  // see grouped_gemm.h
// bench one-batch's greedy decode picks the tokens on the backend, a step ahead of the host
// (Qwen3Model::generate_greedy; generate does so at temperature 0 without penalties); 0: the
// logits to the host and the argmax there every step, as before.
inline constexpr IntKnob kDeviceGreedyKnob{"FP8LM_DEVICE_GREEDY", 0, 1, 1};
// The persistent decode kernel (fp8lm/decode_layers.h): on (off by default: slower than the
// layered path so far), and the depth of its weight ring in stages of 16 rows x 1 KB (fewer where
// shared memory is short).
inline constexpr IntKnob kDecodeLayersKnob{"FP8LM_DECODE_LAYERS", 0, 1, 0};
inline constexpr IntKnob kDecodeLayersStagesKnob{"FP8LM_DECODE_LAYERS_STAGES", 2, 12, 8};
inline constexpr IntKnob kDecodeLayersStageKbKnob{"FP8LM_DECODE_LAYERS_STAGE_KB", 1, 4, 4};  // k bytes per row, in KB
inline constexpr IntKnob kIntKnobs[] = {kPdlKnob,         kDecodeMaxStagesKnob, kDecodeCtasPerSmKnob,
                                        kFlashWgmmaKnob,  kFlashPSplitKnob,     kGemvMaxMbKnob,
                                        kFlashDecodeKnob, kMoeRouteWarpKnob,    kGroupedEarlyWeightsKnob,
                                        kDeviceGreedyKnob, kDecodeLayersKnob,   kDecodeLayersStagesKnob,
                                        kDecodeLayersStageKbKnob};
inline constexpr const char* kDecodeFusionKnob = "FP8LM_DECODE_FUSION";

// Whether `text` sets `knob`: an integer in [lo, hi] (its value in *value).
inline bool knob_parse(const IntKnob& knob, const char* text, int* value) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || v < knob.lo || v > knob.hi) return false;
  *value = static_cast<int>(v);
  return true;
}

// The value `text` (the environment's, or nullptr when unset) gives `knob`.
inline int knob_value_from(const IntKnob& knob, const char* text) {
  int value = knob.fallback;
  return knob_parse(knob, text, &value) ? value : knob.fallback;
}

// The value of `knob` in this process's environment (callers cache it: read once).
inline int knob_value(const IntKnob& knob) { return knob_value_from(knob, std::getenv(knob.name)); }

// What a result records for a knob set to `text`: the text, and when it does not set the knob,
// the value that ran instead ("64 (not an integer in [1, 8]: 3 used)").
inline std::string knob_record(const IntKnob& knob, const char* text) {
  int value = 0;
  if (knob_parse(knob, text, &value)) return text;
  return std::string(text) + " (not an integer in [" + std::to_string(knob.lo) + ", " + std::to_string(knob.hi) +
         "]: " + std::to_string(knob.fallback) + " used)";
}

// The decode fusions (FP8LM_DECODE_FUSION): each op asked to fuse runs fused when its fusion is
// on, else as its separate launches with the same bits (an A/B knob, and a way to isolate a
// failure or a slowdown to one fusion).
enum class DecodeFusion : unsigned {
  kRope = 1,    // AttentionArgs::rope: qk_norm_rope inside the decode attention kernel
  kSwiglu = 2,  // gate_up_swiglu (dense and grouped): the SiLU·up quantize in the GEMM's epilogue
};
// Each fusion's name in FP8LM_DECODE_FUSION, in the order a recorded set lists them.
inline constexpr std::pair<DecodeFusion, std::string_view> kDecodeFusionNames[] = {
    {DecodeFusion::kRope, "rope"}, {DecodeFusion::kSwiglu, "swiglu"}};
inline constexpr unsigned kAllDecodeFusions = [] {
  unsigned all = 0;
  for (const auto& [bit, name] : kDecodeFusionNames) all |= static_cast<unsigned>(bit);
  return all;
}();

// The set FP8LM_DECODE_FUSION names: "1" (default) or "all", "0" or "none", or a comma list of
// rope, swiglu. An unknown name turns every fusion off (an A/B must not silently measure the
// default).
inline unsigned decode_fusions_from(const char* text) {
  if (text == nullptr || *text == '\0') return kAllDecodeFusions;
  const std::string_view all(text);
  if (all == "1" || all == "all") return kAllDecodeFusions;
  if (all == "0" || all == "none") return 0;
  unsigned set = 0;
  for (std::size_t at = 0; at <= all.size();) {
    const std::size_t end = std::min(all.find(',', at), all.size());
    const std::string_view name = all.substr(at, end - at);
    unsigned bit = 0;
    for (const auto& [fusion, fusion_name] : kDecodeFusionNames)
      if (name == fusion_name) bit = static_cast<unsigned>(fusion);
    if (bit == 0) return 0;
    set |= bit;
    at = end + 1;
  }
  return set;
}

// The set this process runs with (FP8LM_DECODE_FUSION, read once).
inline unsigned decode_fusions() {
  static const unsigned set = decode_fusions_from(std::getenv(kDecodeFusionKnob));
  return set;
}

inline bool decode_fusion_enabled(DecodeFusion which) {
  return (decode_fusions() & static_cast<unsigned>(which)) != 0;
}

// The set as FP8LM_DECODE_FUSION would name it ("rope,swiglu", "none"): what a result records, so
// a misspelt knob shows as what it did.
inline std::string decode_fusion_names(unsigned set) {
  std::string names;
  for (const auto& [bit, name] : kDecodeFusionNames)
    if (set & static_cast<unsigned>(bit)) names.append(names.empty() ? "" : ",").append(name);
  return names.empty() ? "none" : names;
}

}  // namespace fp8lm
