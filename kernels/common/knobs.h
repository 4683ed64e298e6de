// The kernels' A/B knobs: environment variables that change a launcher's choice without a rebuild
// (README, "End to end"), each read once per process by the code that uses it. kKnobNames lists
// them all, so that benchmark results can record the ones that are set.
#pragma once

#include <cerrno>
#include <cstdlib>

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

// Whether the decode fusions run fused (FP8LM_DECODE_FUSION, default 1; 0: each op asked to fuse
// runs its parts as separate launches, same bits: an A/B knob and a way to isolate a failure).
// Covers AttentionArgs::rope, moe_router_route_plan, MoePlanArgs::gather_*, gate_up_swiglu (dense
// and grouped) and gemm_add_norm.
inline bool decode_fusion_enabled() {
  static const bool value = env_int("FP8LM_DECODE_FUSION", 0, 1, 1) == 1;
  return value;
}

}  // namespace fp8lm
