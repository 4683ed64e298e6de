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
}  // namespace

GemmConfig pick_gemm_config(int m, int n, int k, const DeviceInfo& device) {
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
