// Which GEMM configuration runs for a shape: kept apart from the kernels so it can be read (and
// changed) in one place. Tests force every configuration, so the choice only affects speed.
#include "fp8lm/gemm.h"
#include "fp8lm/grouped_gemm.h"

#include <algorithm>

#include "common/knobs.h"
#include "gemm/gemv.h"

namespace fp8lm {

namespace {
const GemmConfig& find_config(GemmKernel kernel, int block_m, int block_n) {
  for (const GemmConfig& c : gemm_configs())
    if (c.kernel == kernel && c.block_m == block_m && c.block_n == block_n) return c;
  return gemm_configs().front();  // unreachable while the tables below match the kernels
}

// Hopper: the sm90 kernels (sm90_blockwise.cu; the measurements behind these rules are in
// kernels/gemm/NOTES-sm90.md).
// The large-M tile (128x128 or 64x128) that minimizes waves x tile area / the tile's sustained
// rate, for `m_blocks(block_m)` row-blocks (the persistent kernel runs one CTA per SM; 64x128 has
// one consumer warpgroup: ~0.68 of 128x128's rate).
template <class MBlocks>
GemmConfig pick_sm90_big_tile(MBlocks m_blocks, int n, int sms) {
  struct Candidate {
    int block_m, block_n;
    double rate;
  };
  constexpr Candidate kCandidates[] = {{128, 128, 1.0}, {64, 128, 0.68}};
  const Candidate* best = nullptr;
  double best_cost = 0;
  for (const Candidate& c : kCandidates) {
    const long long tiles = m_blocks(c.block_m) * ((n + c.block_n - 1) / c.block_n);
    const double cost = static_cast<double>((tiles + sms - 1) / sms) * c.block_m * c.block_n / c.rate;
    if (!best || cost < best_cost) best = &c, best_cost = cost;
  }
  return find_config(GemmKernel::kSm90Wgmma, best->block_m, best->block_n);
}

int sm_count_or_h100(const DeviceInfo& device) { return device.sm_count > 0 ? device.sm_count : 132; }

// Up to one CTA's tokens (8, the mma N) and FP8LM_GEMV_MAX_MB MB of weights (grouped: of the
// experts that can have rows), the GEMV (gemv.cu) instead of the TMA + wgmma decode kernel.
// Default 9 MB: the GEMMs where it is faster alone (the 0.6B's four, the 1.7B's qkv and o), and
// in a decode step 0.6B 1.56 -> 1.47 ms, 1.7B 2.12 -> 1.96 on an H200 (kernels/gemm/NOTES-sm90.md,
// "GEMV for decode"). An A/B knob, read once.
const GemmConfig& gemv_config() { return gemv::configs().front(); }
bool gemv_fits(int rows, double weight_bytes) {
  static const int max_mb = knob_value(kGemvMaxMbKnob);
  return rows <= gemv_config().block_m && weight_bytes <= max_mb * 1e6;
}

// The swap-AB decode kernel with the smallest token tile (16, 32 or 64) that covers `rows` <= 64.
GemmConfig sm90_decode_config(int rows) {
  return find_config(GemmKernel::kSm90Decode, rows <= 16 ? 16 : rows <= 32 ? 32 : 64, 64);
}

GemmConfig pick_sm90(int m, int n, int k, const DeviceInfo& device) {
  const int sms = sm_count_or_h100(device);
  if (gemv_fits(m, static_cast<double>(n) * k)) return gemv_config();
  // Small m is a weight stream: the swap-AB decode kernel (tokens are the wgmma N side, split-K
  // over a cluster fills the SMs) with the smallest token tile that covers m.
  if (m <= 32) return sm90_decode_config(m);
  // m in (32, 64]: the 64x128 wgmma tile while it has enough tiles to keep a third of the SMs
  // busy; otherwise (narrow n) the decode kernel, which splits K to fill the SMs.
  const long long tiles_64 = static_cast<long long>((m + 63) / 64) * ((n + 127) / 128);
  if (m <= 64 && 3 * tiles_64 < sms) return sm90_decode_config(m);
  return pick_sm90_big_tile([m](int block_m) { return static_cast<long long>((m + block_m - 1) / block_m); }, n, sms);
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

// Grouped (MoE): the kernel is picked by the most rows one expert can have. The GEMV where
// gemv_fits (up to 9 MB of the experts with rows by default); up to 64 the
// swap-AB decode kernel with the smallest token tile that covers them (decode: one token's top-k
// experts have one row each; the weights of the experts with rows are the whole cost). Beyond
// that, the large-M tile by the same cost model as dense, over grouped_row_blocks_bound (which
// counts each expert's partial last row-block).
// sm_89: the dense rule at the expert's bound (its grouped kernel is a grid over experts).
GemmConfig pick_grouped_gemm_config(int total_rows, int max_rows_per_expert, int num_experts, int n, int k,
                                    const DeviceInfo& device) {
  const int rows = std::max(1, std::min(max_rows_per_expert, total_rows));
  if (device.sm_version() != 90) return pick_gemm_config(rows, n, k, device);
  if (gemv_fits(rows, static_cast<double>(n) * k * std::min(num_experts, total_rows))) return gemv_config();
  if (rows <= 64) return sm90_decode_config(rows);
  return pick_sm90_big_tile(
      [&](int block_m) { return grouped_row_blocks_bound(total_rows, max_rows_per_expert, num_experts, block_m); }, n,
      sm_count_or_h100(device));
}

}  // namespace fp8lm
