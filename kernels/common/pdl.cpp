// pdl_enabled() (kernels/common/pdl.cuh): per device, cached.
#include <array>
#include <atomic>
#include "common/knobs.h"
#include "common/pdl.cuh"

namespace fp8lm {

bool pdl_enabled() {
  static const bool disabled = knob_value(kPdlKnob) == 0;
  if (disabled) return false;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  constexpr int kMaxDevices = 64;
  static std::array<std::atomic<int>, kMaxDevices> known{};  // 0: not asked yet, 1: yes, 2: no
  if (device < 0 || device >= kMaxDevices) return false;
  int state = known[device].load(std::memory_order_relaxed);
  if (state == 0) {
    int major = 0;
    state = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess && major >= 9 ? 1 : 2;
    known[device].store(state, std::memory_order_relaxed);
  }
  return state == 1;
}

}  // namespace fp8lm
