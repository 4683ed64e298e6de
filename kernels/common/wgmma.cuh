// Hopper wgmma plumbing shared by the sm_90a kernels (the GEMMs in kernels/gemm/sm90_blockwise.cu,
// the attention in kernels/attention/flash_sm90.cu): shared-memory matrix descriptors for 128-byte
// swizzled tiles, the fence / commit / wait instructions, and the register fence that keeps the
// compiler from moving accumulator accesses across them. Device bodies exist only in the sm_90a
// pass (__CUDA_ARCH_FEAT_SM90_ALL); the sm_89 pass compiles the kernels that use them to nothing.
#pragma once

#include <cstdint>

#include "common/ptx.cuh"

namespace fp8lm::sm90 {

inline constexpr int kSwizzleAlign = 1024;  // 128B-swizzled tiles start on 1024-byte boundaries

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// Descriptor of a K-major tile with 128-byte swizzle (as TMA's SWIZZLE_128B writes it, or chunk c
// of row r stored at chunk c ^ (r % 8) of the row's 128 bytes): 8-row core groups 1024 bytes apart
// (SBO), LBO unused for this layout, mode 1 = 128B. Stepping k inside the 128-byte row is a plain
// start-address offset (+32 bytes per 32 fp8 or 16 bf16 elements).
__device__ __forceinline__ uint64_t sw128_desc(const void* p) {
  const uint64_t a = ptx::smem_addr(p);
  return ((a & 0x3FFFFu) >> 4) | (uint64_t{1} << 16) | (uint64_t{kSwizzleAlign >> 4} << 32) |
         (uint64_t{1} << 62);
}
// Descriptor of an MN-major operand (the instruction's transpose flag set) with 128-byte swizzle:
// the same physical rows of 128 bytes, one per k index, each holding 64 consecutive 16-bit
// elements along M/N; 8-row groups along k 1024 bytes apart (SBO), and `mn_block_bytes` (LBO)
// from one 64-element block along M/N to the next.
__device__ __forceinline__ uint64_t sw128_mn_desc(const void* p, uint32_t mn_block_bytes) {
  const uint64_t a = ptx::smem_addr(p);
  return ((a & 0x3FFFFu) >> 4) | (uint64_t{(mn_block_bytes >> 4) & 0x3FFFu} << 16) |
         (uint64_t{kSwizzleAlign >> 4} << 32) | (uint64_t{1} << 62);
}
// Orders this thread's generic-proxy writes to shared memory (st.shared, cp.async) before later
// async-proxy reads of it (wgmma operands, TMA stores); a barrier then publishes them to the CTA.
__device__ __forceinline__ void fence_proxy_async_smem() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}
// The first kSwizzleAlign boundary in the dynamic shared memory (which is only 16-byte aligned);
// the kernels reserve kSwizzleAlign extra bytes for it.
__device__ __forceinline__ uint8_t* swizzle_aligned(uint8_t* smem_raw) {
  return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + kSwizzleAlign - 1) &
                                    ~uintptr_t{kSwizzleAlign - 1});
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
// Keeps the compiler from moving accumulator reads/writes across wgmma issue/wait.
template <int R>
__device__ __forceinline__ void fence_regs(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
template <int R, int C>
__device__ __forceinline__ void fence_regs(float (&d)[R][C]) {
#pragma unroll
  for (int i = 0; i < R; ++i) fence_regs(d[i]);
}
#endif  // __CUDA_ARCH_FEAT_SM90_ALL

}  // namespace fp8lm::sm90
