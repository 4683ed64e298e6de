// Programmatic dependent launch (PDL, sm_90+): a kernel launched with the
// ProgrammaticStreamSerialization attribute may start while the kernel before it in the stream is
// still running, once every CTA of that kernel has called pdl_launch_dependents() (or exited). It
// must call pdl_wait() before it touches memory that earlier kernels write or read: pdl_wait()
// returns when the kernels before it have completed and their writes are visible. What a kernel
// does before pdl_wait() (shared-memory and barrier setup, tensor-map prefetch, loads of weights
// that no kernel writes) overlaps the previous kernel's tail and the launch gap; at batch 1 a
// decode step is ~15 short kernels per layer, so that gap is a large share of the step.
//
// Every kernel of the engine calls pdl_wait() first, or after work that reads only weights and
// constants (the dense decode GEMM's first weight loads, qk_norm_rope's RoPE table and norm
// weights, rmsnorm_quantize's, moe_combine's and the lm_head row kernel's weights), and then
// pdl_launch_dependents(). Launched without the attribute (a CPU-side
// launch on sm_89, FP8LM_PDL=0) both are no-ops. The chain stays correct through kernels that do
// not take part (cuBLASLt's): a kernel after one of them waits for its completion as usual.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

namespace fp8lm {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Whether launches on the current device get the PDL attribute: compute capability >= 9.0 and
// the environment does not say FP8LM_PDL=0 (for A/B timing). Defined in kernels/common/pdl.cpp
// with its own lock-free per-device flag: it runs at every launch, where current_device() (a
// DeviceInfo copy under a mutex) would cost more.
bool pdl_enabled();

// Sets *attr to the PDL attribute and returns 1 when pdl_enabled(), else returns 0: the number of
// attributes to add to a cudaLaunchConfig_t.
inline unsigned pdl_attribute(cudaLaunchAttribute* attr) {
  if (!pdl_enabled()) return 0;
  attr->id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr->val.programmaticStreamSerializationAllowed = 1;
  return 1;
}

// kernel<<<grid, block, smem, stream>>>(args...) with the PDL attribute where enabled.
template <typename... Params, typename... Args>
cudaError_t launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t stream,
                       Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr;
  cfg.numAttrs = pdl_attribute(&attr);
  cfg.attrs = &attr;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

}  // namespace fp8lm
