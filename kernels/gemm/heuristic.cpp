// Which GEMM configuration runs for a shape: kept apart from the kernels so it can be read (and
// changed) in one place. Tests force every configuration, so the choice only affects speed.
#include "fp8lm/gemm.h"

namespace fp8lm {

namespace {
const GemmConfig& find_config(GemmKernel kernel, int block_m, int block_n) {
  for (const GemmConfig& c : gemm_configs())
    if (c.kernel == kernel && c.block_m == block_m && c.block_n == block_n) return c;
  return gemm_configs().front();  // unreachable while the tables below match the kernels
}

// Hopper: the sm90 kernels (sm90_blockwise.cu; the measurements behind these rules are in
// kernels/gemm/NOTES-sm90.md).
GemmConfig pick_sm90(int m, int n, int k, const DeviceInfo& device) {
  const int sms = device.sm_count > 0 ? device.sm_count : 132;
  // Small m is a weight stream: the swap-AB decode kernel (tokens are the wgmma N side, split-K
  // over a cluster fills the SMs) with the smallest token tile that covers m.
  if (m <= 16) return find_config(GemmKernel::kSm90Decode, 16, 64);
  if (m <= 32) return find_config(GemmKernel::kSm90Decode, 32, 64);
  // m in (32, 64]: the 64x128 wgmma tile while it has enough tiles to keep a third of the SMs
  // busy; otherwise (narrow n) the decode kernel, which splits K to fill the SMs.
  const long long tiles_64 = static_cast<long long>((m + 63) / 64) * ((n + 127) / 128);
  if (m <= 64 && 3 * tiles_64 < sms) return find_config(GemmKernel::kSm90Decode, 64, 64);
  // The persistent kernel runs one CTA per SM, so time ~ waves x tile area / the tile's
  // sustained rate (64x128 has one consumer warpgroup: ~0.68 of 128x128's rate).
  struct Candidate {
    int block_m, block_n;
    double rate;
  };
  constexpr Candidate kCandidates[] = {{128, 128, 1.0}, {64, 128, 0.68}};
  const Candidate* best = nullptr;
  double best_cost = 0;
  for (const Candidate& c : kCandidates) {
    const long long tiles = static_cast<long long>((m + c.block_m - 1) / c.block_m) * ((n + c.block_n - 1) / c.block_n);
    const double cost = static_cast<double>((tiles + sms - 1) / sms) * c.block_m * c.block_n / c.rate;
    if (!best || cost < best_cost) best = &c, best_cost = cost;
  }
  return find_config(GemmKernel::kSm90Wgmma, best->block_m, best->block_n);
}
}  // namespace

GemmConfig pick_gemm_config(int m, int n, int k, const DeviceInfo& device) {
  if (device.sm_version() == 90) return pick_sm90(m, n, k, device);
  // SM89 mma.sync kernel. Small m: the smallest tile that covers m keeps wasted mma work and
  // shared memory low, and n64 tiles give more CTAs to spread the weight stream over the SMs.
  // Larger m: bigger tiles re-read A and B less; m128 only once there are enough tiles to fill
  // every SM at least twice.
  if (m <= 16) return find_config(GemmKernel::kSm89Mma, 16, 64);
  if (m <= 32) return find_config(GemmKernel::kSm89Mma, 32, 64);
  const long long tiles_128 = static_cast<long long>((m + 127) / 128) * ((n + 127) / 128);
  if (m <= 128 || tiles_128 < 2LL * device.sm_count) return find_config(GemmKernel::kSm89Mma, 64, 128);
  return find_config(GemmKernel::kSm89Mma, 128, 128);
}

}  // namespace fp8lm
