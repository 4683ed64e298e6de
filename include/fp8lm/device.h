// What fp8lm needs to know about the CUDA device it runs on.
#pragma once

#include <cstddef>
#include <string>

#include "fp8lm/status.h"

namespace fp8lm {

struct DeviceInfo {
  int ordinal = -1;
  std::string name;           // as nvidia-smi prints it, e.g. "NVIDIA H100 80GB HBM3"
  int cc_major = 0;           // compute capability
  int cc_minor = 0;
  int sm_count = 0;
  std::size_t l2_bytes = 0;
  std::size_t smem_optin_bytes = 0;  // largest dynamic shared memory one block may opt in to
  std::size_t global_mem_bytes = 0;

  int sm_version() const { return cc_major * 10 + cc_minor; }  // 89, 90, ...
};

// True when the CUDA runtime sees at least one device. When it does not, `why` (if given) says
// what the runtime answered, e.g. "no CUDA-capable device is detected".
bool cuda_device_available(std::string* why = nullptr);

// Properties of the current device, cached per ordinal after the first query.
Status current_device(DeviceInfo* info);

// Waits for all work on the current device; returns the first asynchronous error, if any.
Status synchronize_device();

// OK on GPUs with FP8 tensor cores (sm_89 Ada, sm_90 Hopper and later); otherwise an error that
// names the GPU and what fp8lm needs.
Status check_fp8_support(const DeviceInfo& info);

}  // namespace fp8lm
