// A thin cuBLASLt wrapper shared by the benchmarks (peers: blockwise FP8, the same math as ours;
// tensorwise FP8, the FP8 peak; bf16) and by lm_head (bf16 inputs, fp32 logits). Our names:
// activations a [m, k], weights b [n, k], out [m, n], all row-major. cuBLASLt is column-major, so
// it computes out^T [n, m] = b [n, k] . a^T as "TN": its A is our weights (transposed), its B our
// activations.
#pragma once

#include <cublasLt.h>

#include <memory>
#include <string>

#include "fp8lm/status.h"

namespace fp8lm {

enum class LtKind {
  kFp8Blockwise,   // a: e4m3 + VEC128_32F scales; b: e4m3 + BLK128x128_32F scales; out bf16
  kFp8Tensorwise,  // e4m3 inputs, one scale each (1.0), fast accumulation, out bf16: the FP8 peak
  kBf16,           // bf16 inputs, fp32 accumulation, out bf16 or fp32 (LtOutput)
};

enum class LtOutput {
  kBf16,  // every kind
  kF32,   // kBf16 only (lm_head's logits)
};

// How the blockwise scale tensors are laid out for cuBLASLt, relative to fp8lm's layout
// (a_scales [m, ceil(k/128)], b_scales [ceil(n/128), ceil(k/128)], both row-major). In either
// case the contiguous dimension is padded to a multiple of 4 floats.
struct LtScaleLayout {
  bool a_transposed = false;  // [ceil(k/128), m] row-major instead
  bool b_transposed = false;  // [ceil(k/128), ceil(n/128)] row-major instead
  std::string describe() const;
};

class LtContext {
 public:
  static Status create(std::unique_ptr<LtContext>* out);
  ~LtContext();
  cublasLtHandle_t handle() const { return handle_; }
  void* workspace() const { return workspace_; }
  std::size_t workspace_bytes() const { return kWorkspaceBytes; }

 private:
  static constexpr std::size_t kWorkspaceBytes = 64ull << 20;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
};

// One planned cuBLASLt matmul for a fixed shape (descriptors + the heuristic's best algorithm).
class LtGemm {
 public:
  // Returns an error starting with "unsupported" when cuBLASLt has no algorithm for this case.
  static Status create(const LtContext& ctx, LtKind kind, int m, int n, int k, LtScaleLayout layout,
                       std::unique_ptr<LtGemm>* out, LtOutput output = LtOutput::kBf16);
  ~LtGemm();
  // a_scales/b_scales: only for kFp8Blockwise (in the planned layout).
  Status run(const void* a, const float* a_scales, const void* b, const float* b_scales, void* out,
             cudaStream_t stream) const;

 private:
  LtGemm() = default;
  const LtContext* ctx_ = nullptr;
  LtKind kind_{};
  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, d_ = nullptr;
  cublasLtMatmulAlgo_t algo_{};
};

}  // namespace fp8lm
