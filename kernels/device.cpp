// Device discovery and the FP8 capability check.
#include <cuda_runtime_api.h>

#include <map>
#include <mutex>

#include "fp8lm/cuda_status.h"
#include "fp8lm/device.h"

namespace fp8lm {

bool cuda_device_available(std::string* why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    if (why) *why = std::string("the CUDA runtime found no usable GPU (") + cudaGetErrorString(err) + ")";
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return false;
  }
  if (count == 0 && why) *why = "the CUDA runtime reports 0 devices";
  return count > 0;
}

Status current_device(DeviceInfo* info) {
  static std::mutex mu;
  static std::map<int, DeviceInfo> cache;
  int ordinal = 0;
  FP8LM_CUDA_RETURN_IF_ERROR(cudaGetDevice(&ordinal));
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(ordinal); it != cache.end()) {
    *info = it->second;
    return Status::Ok();
  }
  cudaDeviceProp prop{};
  FP8LM_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, ordinal));
  DeviceInfo d;
  d.ordinal = ordinal;
  d.name = prop.name;
  d.cc_major = prop.major;
  d.cc_minor = prop.minor;
  d.sm_count = prop.multiProcessorCount;
  d.l2_bytes = static_cast<std::size_t>(prop.l2CacheSize);
  d.smem_optin_bytes = prop.sharedMemPerBlockOptin;
  d.global_mem_bytes = prop.totalGlobalMem;
  cache[ordinal] = d;
  *info = d;
  return Status::Ok();
}

Status synchronize_device() { return cuda_status(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

Status check_fp8_support(const DeviceInfo& info) {
  if (info.sm_version() >= 89) return Status::Ok();
  return Status::Error("GPU " + std::to_string(info.ordinal) + " (" + info.name + ", sm_" +
                       std::to_string(info.sm_version()) +
                       ") has no FP8 tensor cores: fp8lm's GPU kernels need sm_89 (Ada: L40S, "
                       "RTX 4090) or sm_90 (Hopper: H100, H20, H200); use --device cpu instead");
}

}  // namespace fp8lm
