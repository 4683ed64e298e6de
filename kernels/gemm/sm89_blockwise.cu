// FP8 blockwise GEMM for Ada (sm_89): mma.sync.m16n8k32 e4m3 (SASS QMMA), a STAGES-deep cp.async
// ring of 128-wide k-tiles, and per-128-k promotion of the partial sums.
//
// Tile: BM x BN output, BK = 128 = the scale group, so each k-tile has exactly one A scale per row
// and (since BN divides 128 and tiles are BN-aligned) one B scale. Per k-tile each warp computes
// its WM x WN partial product into `part` with 4 k32 mma steps, then promotes:
//     acc += part * a_scale[row] * b_scale
// Shared memory rows are 128 bytes (8 chunks of 16 B); chunk c of row r is stored at chunk
// c ^ (r % 8), so both the cp.async writes and the ldmatrix reads (8 rows, same logical chunk)
// touch 8 distinct 16-byte bank groups: no bank conflicts.
// Ragged edges: rows of A/B beyond m/n and 16-byte chunks beyond k are zero-filled by cp.async
// (k % 16 == 0), so they add nothing; out-of-range outputs are not stored.
// Tiles are visited in groups of kGroupM row-tiles per column sweep so a B tile read from DRAM is
// reused by kGroupM CTAs while it is in L2.
// Grouped (MoE) GEMM: the same tile code, each expert's CTAs on their expert's rows and weights
// (grouped_gemm_kernel); the row ranges are read from device memory in the kernel, so there is
// no host synchronisation on sm_89 either.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>

#include "fp8lm/cuda_status.h"
#include "common/pdl.cuh"
#include "common/ptx.cuh"
#include "gemm/sm89_blockwise.h"

namespace fp8lm::sm89 {

namespace {

constexpr int kBlockK = kQuantGroup;  // 128: one scale group per k-tile
constexpr int kRowBytes = kBlockK;    // FP8: one byte per element
constexpr int kChunks = kRowBytes / 16;
constexpr int kGroupM = 8;

template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES>
struct Tile {
  static constexpr int kThreads = WARPS_M * WARPS_N * 32;
  static constexpr int WM = BM / WARPS_M;  // warp tile
  static constexpr int WN = BN / WARPS_N;
  static constexpr int MI = WM / 16;  // m16 fragments per warp
  static constexpr int NI = WN / 8;   // n8 fragments per warp
  static constexpr int kABytes = BM * kRowBytes;
  static constexpr int kBBytes = BN * kRowBytes;
  static constexpr int kStageBytes = kABytes + kBBytes + BM * static_cast<int>(sizeof(float));
  static constexpr int kSmemBytes = STAGES * kStageBytes;
  static_assert(BM % (16 * WARPS_M) == 0, "each warp covers whole m16 fragments");
  static_assert(BN % (16 * WARPS_N) == 0, "each warp covers pairs of n8 fragments (ldmatrix.x4)");
  static_assert(kQuantGroup % BN == 0, "a BN-aligned tile must lie inside one 128-row B scale block");
  static_assert(STAGES >= 2, "a pipeline needs at least two stages");
};

__device__ __forceinline__ int swizzle(int row, int chunk) { return row * kRowBytes + ((chunk ^ (row & 7)) << 4); }

template <class T>
__device__ __forceinline__ void load_stage(std::uint8_t* stage, const Fp8GemmArgs& p, int m0, int n0, int kt) {
  const int k0 = kt * kBlockK;
  const int kb = ceil_div(p.k, kBlockK);
  const std::uint8_t* a = reinterpret_cast<const std::uint8_t*>(p.a);
  const std::uint8_t* b = reinterpret_cast<const std::uint8_t*>(p.b);
  std::uint8_t* sa = stage;
  std::uint8_t* sb = stage + T::kABytes;
  float* sscale = reinterpret_cast<float*>(stage + T::kABytes + T::kBBytes);
  for (int i = threadIdx.x; i < (T::kABytes + T::kBBytes) / 16; i += T::kThreads) {
    const bool is_a = i < T::kABytes / 16;
    const int j = is_a ? i : i - T::kABytes / 16;
    const int row = j / kChunks, chunk = j % kChunks;
    const int grow = (is_a ? m0 : n0) + row;
    const int gcol = k0 + chunk * 16;
    const bool valid = grow < (is_a ? p.m : p.n) && gcol < p.k;
    const std::uint8_t* src = is_a ? a : b;
    if (valid) src += static_cast<std::size_t>(grow) * p.k + gcol;
    ptx::cp_async_16((is_a ? sa : sb) + swizzle(row, chunk), src, valid);
  }
  for (int r = threadIdx.x; r < T::kABytes / kRowBytes; r += T::kThreads) {
    const bool valid = m0 + r < p.m;
    const float* src = valid ? p.a_scales + static_cast<std::size_t>(m0 + r) * kb + kt : p.a_scales;
    ptx::cp_async_4(sscale + r, src, valid);
  }
}

// One output tile: `pid` in [0, tiles_m * tiles_n) of the problem `p`.
template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES>
__device__ __forceinline__ void gemm_tile(const Fp8GemmArgs& p, int pid) {
  using T = Tile<BM, BN, WARPS_M, WARPS_N, STAGES>;
  extern __shared__ __align__(128) std::uint8_t smem[];

  // Grouped rasterization of the 1-D tile index into (tile_m, tile_n).
  const int tiles_m = ceil_div(p.m, BM), tiles_n = ceil_div(p.n, BN);
  const int group = pid / (kGroupM * tiles_n);
  const int first_m = group * kGroupM;
  const int group_rows = min(tiles_m - first_m, kGroupM);
  const int tile_m = first_m + (pid % (kGroupM * tiles_n)) % group_rows;
  const int tile_n = (pid % (kGroupM * tiles_n)) / group_rows;
  const int m0 = tile_m * BM, n0 = tile_n * BN;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int warp_m = warp / WARPS_N, warp_n = warp % WARPS_N;
  const int kt_count = ceil_div(p.k, kBlockK);
  const float* b_scales = p.b_scales + static_cast<std::size_t>(n0 / kQuantGroup) * kt_count;

  float acc[T::MI][T::NI][4] = {};

  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < kt_count) load_stage<T>(smem + s * T::kStageBytes, p, m0, n0, s);
    ptx::cp_async_commit();
  }

  for (int kt = 0; kt < kt_count; ++kt) {
    ptx::cp_async_wait<STAGES - 2>();
    __syncthreads();  // stage kt is visible to all; everyone is done with stage kt - 1
    const int next = kt + STAGES - 1;
    if (next < kt_count) load_stage<T>(smem + (next % STAGES) * T::kStageBytes, p, m0, n0, next);
    ptx::cp_async_commit();

    const std::uint8_t* stage = smem + (kt % STAGES) * T::kStageBytes;
    const std::uint8_t* sa = stage;
    const std::uint8_t* sb = stage + T::kABytes;
    const float* sscale = reinterpret_cast<const float*>(stage + T::kABytes + T::kBBytes);

    float part[T::MI][T::NI][4] = {};
#pragma unroll
    for (int kk = 0; kk < kBlockK / 32; ++kk) {
      std::uint32_t af[T::MI][4];
      std::uint32_t bf[T::NI][2];
#pragma unroll
      for (int mi = 0; mi < T::MI; ++mi) {
        // lanes 0-15: rows 0-15 at k 0-15; lanes 16-31: rows 0-15 at k 16-31.
        const int row = warp_m * T::WM + mi * 16 + (lane % 16);
        ptx::ldmatrix_x4(af[mi], sa + swizzle(row, kk * 2 + lane / 16));
      }
#pragma unroll
      for (int nj = 0; nj < T::NI / 2; ++nj) {
        // matrices: (n 0-7, k 0-15) (n 0-7, k 16-31) (n 8-15, k 0-15) (n 8-15, k 16-31)
        const int row = warp_n * T::WN + nj * 16 + (lane % 8) + (lane / 16) * 8;
        std::uint32_t r[4];
        ptx::ldmatrix_x4(r, sb + swizzle(row, kk * 2 + (lane / 8) % 2));
        bf[2 * nj][0] = r[0], bf[2 * nj][1] = r[1];
        bf[2 * nj + 1][0] = r[2], bf[2 * nj + 1][1] = r[3];
      }
#pragma unroll
      for (int mi = 0; mi < T::MI; ++mi)
#pragma unroll
        for (int ni = 0; ni < T::NI; ++ni) ptx::mma_e4m3_16832(part[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
    }

    const float sb_scale = __ldg(b_scales + kt);
#pragma unroll
    for (int mi = 0; mi < T::MI; ++mi) {
      const int row = warp_m * T::WM + mi * 16 + lane / 4;
      const float s0 = sscale[row] * sb_scale, s1 = sscale[row + 8] * sb_scale;
#pragma unroll
      for (int ni = 0; ni < T::NI; ++ni) {
        acc[mi][ni][0] += part[mi][ni][0] * s0;
        acc[mi][ni][1] += part[mi][ni][1] * s0;
        acc[mi][ni][2] += part[mi][ni][2] * s1;
        acc[mi][ni][3] += part[mi][ni][3] * s1;
      }
    }
  }
  ptx::cp_async_wait<0>();  // no copy may still target shared memory when the CTA exits

  // Epilogue: fragment (mi, ni) holds rows lane/4 and lane/4 + 8, columns 2*(lane%4) + {0,1}.
  __nv_bfloat16* out = reinterpret_cast<__nv_bfloat16*>(p.out);
  const bool pairs_aligned = (p.n % 2) == 0;
#pragma unroll
  for (int mi = 0; mi < T::MI; ++mi)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = m0 + warp_m * T::WM + mi * 16 + lane / 4 + half * 8;
      if (row >= p.m) continue;
      __nv_bfloat16* out_row = out + static_cast<std::size_t>(row) * p.n;
#pragma unroll
      for (int ni = 0; ni < T::NI; ++ni) {
        const int col = n0 + warp_n * T::WN + ni * 8 + (lane % 4) * 2;
        const float v0 = acc[mi][ni][half * 2], v1 = acc[mi][ni][half * 2 + 1];
        if (pairs_aligned && col + 1 < p.n) {
          *reinterpret_cast<__nv_bfloat162*>(out_row + col) = __floats2bfloat162_rn(v0, v1);
        } else {
          if (col < p.n) out_row[col] = __float2bfloat16_rn(v0);
          if (col + 1 < p.n) out_row[col + 1] = __float2bfloat16_rn(v1);
        }
      }
    }
}

template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES>
__global__ void __launch_bounds__(WARPS_M * WARPS_N * 32)
    gemm_kernel(const Fp8GemmArgs p) {
  pdl_wait();
  pdl_launch_dependents();
  gemm_tile<BM, BN, WARPS_M, WARPS_N, STAGES>(p, blockIdx.x);
}

// Grouped (MoE): grid (tiles of the largest expert's bound, num_experts). The CTAs of expert
// blockIdx.y run the dense tile code on that expert's rows and weights; the surplus exit at once.
// The range is clamped into [0, total_rows] so offsets that break the contract cannot make a
// CTA write outside `out`.
template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES>
__global__ void __launch_bounds__(WARPS_M * WARPS_N * 32)
    grouped_gemm_kernel(const Fp8GroupedGemmArgs g) {
  pdl_wait();
  pdl_launch_dependents();
  const int e = blockIdx.y;
  const ExpertRows r = expert_rows(g.offsets, e, g.total_rows);
  const Fp8GemmArgs p = grouped_expert_args(g, e, r.begin, r.end);
  if (static_cast<int>(blockIdx.x) >= ceil_div(p.m, BM) * ceil_div(p.n, BN)) return;  // also: no rows
  gemm_tile<BM, BN, WARPS_M, WARPS_N, STAGES>(p, blockIdx.x);
}

// Checks that the tile's shared memory fits the device and opts `kernel` in to it.
template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES, class Kernel>
Status prepare(Kernel* kernel, const DeviceInfo& device) {
  using T = Tile<BM, BN, WARPS_M, WARPS_N, STAGES>;
  if (static_cast<std::size_t>(T::kSmemBytes) > device.smem_optin_bytes)
    return Status::Error("sm89 GEMM tile m" + std::to_string(BM) + "n" + std::to_string(BN) + " needs " +
                         std::to_string(T::kSmemBytes) + " bytes of shared memory; " + device.name +
                         " allows " + std::to_string(device.smem_optin_bytes));
  // The dynamic shared-memory limit is raised once per kernel (one device model per process
  // assumed, as the sm_90 and attention launchers do): every MoE layer launches these.
  static const cudaError_t opt_in =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, T::kSmemBytes);
  return cuda_status(opt_in, "sm89 GEMM shared-memory opt-in");
}

template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES>
Status launch_tile(const Fp8GemmArgs& args, const DeviceInfo& device, cudaStream_t stream) {
  using T = Tile<BM, BN, WARPS_M, WARPS_N, STAGES>;
  auto* kernel = gemm_kernel<BM, BN, WARPS_M, WARPS_N, STAGES>;
  FP8LM_RETURN_IF_ERROR((prepare<BM, BN, WARPS_M, WARPS_N, STAGES>(kernel, device)));
  const long long tiles = static_cast<long long>(ceil_div(args.m, BM)) * ceil_div(args.n, BN);
  if (tiles > 0x7fffffffLL) return Status::Error("sm89 GEMM: too many tiles for one launch");
  return cuda_status(launch_pdl(kernel, static_cast<unsigned>(tiles), T::kThreads, T::kSmemBytes, stream, args),
                     "sm89 GEMM launch");
}

template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES>
Status launch_grouped_tile(const Fp8GroupedGemmArgs& args, const DeviceInfo& device, cudaStream_t stream) {
  using T = Tile<BM, BN, WARPS_M, WARPS_N, STAGES>;
  auto* kernel = grouped_gemm_kernel<BM, BN, WARPS_M, WARPS_N, STAGES>;
  FP8LM_RETURN_IF_ERROR((prepare<BM, BN, WARPS_M, WARPS_N, STAGES>(kernel, device)));
  const int rows_bound = std::min(args.max_rows_per_expert, args.total_rows);
  const long long tiles = static_cast<long long>(ceil_div(rows_bound, BM)) * ceil_div(args.n, BN);
  if (tiles > 0x7fffffffLL) return Status::Error("sm89 grouped GEMM: too many tiles for one launch");
  return cuda_status(
      launch_pdl(kernel, dim3(static_cast<unsigned>(tiles), args.num_experts), T::kThreads, T::kSmemBytes, stream, args),
      "sm89 grouped GEMM launch");
}

// The compiled configurations. Warp layouts: m16 tiles use 1x4 warps along n; m64 2x2; m128 2x4.
constexpr std::array<GemmConfig, 4> kConfigs = {{
    {GemmKernel::kSm89Mma, 16, 64, 4},
    {GemmKernel::kSm89Mma, 32, 64, 4},
    {GemmKernel::kSm89Mma, 64, 128, 4},
    {GemmKernel::kSm89Mma, 128, 128, 3},
}};

// Calls f.template operator()<BM, BN, WARPS_M, WARPS_N, STAGES>() for config `c` (one of kConfigs).
template <class F>
Status with_tile(const GemmConfig& c, F&& f) {
  if (c.block_m == 16 && c.block_n == 64 && c.stages == 4) return f.template operator()<16, 64, 1, 4, 4>();
  if (c.block_m == 32 && c.block_n == 64 && c.stages == 4) return f.template operator()<32, 64, 1, 4, 4>();
  if (c.block_m == 64 && c.block_n == 128 && c.stages == 4) return f.template operator()<64, 128, 2, 2, 4>();
  if (c.block_m == 128 && c.block_n == 128 && c.stages == 3) return f.template operator()<128, 128, 2, 4, 3>();
  return Status::Error("sm89 GEMM: no compiled kernel for configuration " + c.name());
}

}  // namespace

std::span<const GemmConfig> configs() { return kConfigs; }

Status launch(const Fp8GemmArgs& args, const GemmConfig& c, const DeviceInfo& device, cudaStream_t stream) {
  return with_tile(c, [&]<int BM, int BN, int WM, int WN, int ST>() {
    return launch_tile<BM, BN, WM, WN, ST>(args, device, stream);
  });
}

Status launch_grouped(const Fp8GroupedGemmArgs& args, const GemmConfig& c, const DeviceInfo& device,
                      cudaStream_t stream) {
  return with_tile(c, [&]<int BM, int BN, int WM, int WN, int ST>() {
    return launch_grouped_tile<BM, BN, WM, WN, ST>(args, device, stream);
  });
}

}  // namespace fp8lm::sm89
