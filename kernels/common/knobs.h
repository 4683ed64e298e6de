// The kernels' A/B knobs: environment variables that change a launcher's choice without a rebuild
// (README, "End to end"), each read once per process by the code that uses it. kKnobNames lists
// them all, so that benchmark results can record the ones that are set.
#pragma once

#include <cerrno>
#include <algorithm>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>

namespace fp8lm {

inline constexpr const char* kKnobNames[] = {"FP8LM_PDL", "FP8LM_DECODE_MAX_STAGES", "FP8LM_DECODE_CTAS_PER_SM",
                                             "FP8LM_FLASH_WGMMA", "FP8LM_FLASH_P_SPLIT",
                                             "FP8LM_GEMV_MAX_MB", "FP8LM_DECODE_FUSION"};

// The integer in environment variable `name` when it is one and lies in [lo, hi], else fallback.
inline int env_int(const char* name, int lo, int hi, int fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi) return fallback;
  return static_cast<int>(v);
}

// The decode fusions (FP8LM_DECODE_FUSION): each op asked to fuse runs fused when its fusion is
// on, else as its separate launches with the same bits (an A/B knob, and a way to isolate a
// failure or a slowdown to one fusion).
enum class DecodeFusion : unsigned {
  kRope = 1,    // AttentionArgs::rope: qk_norm_rope inside the decode attention kernel
  kSwiglu = 2,  // gate_up_swiglu (dense and grouped): the SiLU·up quantize in the GEMM's epilogue
};

// The set FP8LM_DECODE_FUSION names: "1" (default) or "all", "0" or "none", or a comma list of
// rope, swiglu. An unknown name turns every fusion off (an A/B must not silently measure the
// default).
inline unsigned decode_fusions_from(const char* text) {
  constexpr unsigned kAll = 3;
  if (text == nullptr || *text == '\0') return kAll;
  const std::string_view all(text);
  if (all == "1" || all == "all") return kAll;
  if (all == "0" || all == "none") return 0;
  unsigned set = 0;
  for (std::size_t at = 0; at <= all.size();) {
    const std::size_t end = std::min(all.find(',', at), all.size());
    const std::string_view name = all.substr(at, end - at);
    if (name == "rope") set |= static_cast<unsigned>(DecodeFusion::kRope);
    else if (name == "swiglu") set |= static_cast<unsigned>(DecodeFusion::kSwiglu);
    else return 0;
    at = end + 1;
  }
  return set;
}

// The set this process runs with (FP8LM_DECODE_FUSION, read once).
inline unsigned decode_fusions() {
  static const unsigned set = decode_fusions_from(std::getenv("FP8LM_DECODE_FUSION"));
  return set;
}

inline bool decode_fusion_enabled(DecodeFusion which) {
  return (decode_fusions() & static_cast<unsigned>(which)) != 0;
}

// The set as FP8LM_DECODE_FUSION would name it ("rope,swiglu", "none"): what a result records, so
// a misspelt knob shows as what it did.
inline std::string decode_fusion_names(unsigned set) {
  std::string names;
  for (const auto& [bit, name] : {std::pair{DecodeFusion::kRope, "rope"}, std::pair{DecodeFusion::kSwiglu, "swiglu"}})
    if (set & static_cast<unsigned>(bit)) names += (names.empty() ? "" : ",") + std::string(name);
  return names.empty() ? "none" : names;
}

}  // namespace fp8lm
