// The card's ceilings (DESIGN.md "Measuring"): the copy bandwidth and the FP8 peak that every floor
// in bench/ divides by, measured in the run that reports the floor.
#pragma once

#include <cstddef>

#include "fp8lm/status.h"

namespace fp8lm {
class LtContext;
}

namespace fp8lm::bench {

// Copy bandwidth: the faster of two 1 GiB device-to-device copies, our 16-byte copy kernel replayed
// in a CUDA graph and the runtime's own cudaMemcpyAsync launched eagerly (on an H200 the latter
// measured 4238 GB/s against the kernel's 3928, so the kernel alone would flatter every floor
// ratio; graph memcpy nodes may run on the slower copy engines and are not used).
// FP8 peak: a large tensorwise-scaled cuBLASLt FP8 GEMM with bf16 output.
inline constexpr std::size_t kCeilingCopyBytes = 1ull << 30;
inline constexpr int kPeakM = 8192, kPeakN = 8192, kPeakK = 16384;

struct Ceilings {
  double copy_gbps = 0;   // bytes read + written per second / 1e9
  double fp8_tflops = 0;  // cuBLASLt tensorwise FP8, bf16 out
};

// Median of `replays` CUDA-graph replays of each; needs about 1.5 GiB of free device memory.
Status measure_ceilings(const LtContext& lt, int replays, Ceilings* out);
// The same with a cuBLASLt context of its own (for benchmarks that use no other cuBLASLt work).
Status measure_ceilings(int replays, Ceilings* out);

}  // namespace fp8lm::bench
