// CUDA runtime errors as Status values (kernels and backends never abort the process).
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "fp8lm/status.h"

namespace fp8lm {

inline Status cuda_status(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::Ok();
  return Status::Error(std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

}  // namespace fp8lm

#define FP8LM_CUDA_RETURN_IF_ERROR(call) FP8LM_RETURN_IF_ERROR(::fp8lm::cuda_status((call), #call))
