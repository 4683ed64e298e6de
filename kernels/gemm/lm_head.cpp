// lm_head through cuBLASLt: logits [n, vocab] (fp32) = x [n, hidden] (bf16) . weight [vocab, hidden]^T
// (bf16), fp32 accumulation. One cuBLASLt handle + workspace per device and one plan per shape,
// created on first use and kept for the life of the process. NOTES: the first call for a shape
// allocates (cudaMalloc) and queries the heuristic, so it must not happen inside a CUDA graph
// capture; warm each shape up before capturing.
#include <cuda_runtime_api.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "fp8lm/cuda_status.h"
#include "fp8lm/layer_ops.h"
#include "gemm/cublaslt.h"

namespace fp8lm {

namespace {

struct LmHeadPlans {
  std::mutex mutex;
  std::map<int, std::unique_ptr<LtContext>> contexts;                              // by device
  std::map<std::tuple<int, int, int, int>, std::unique_ptr<LtGemm>> plans;         // device, n, vocab, hidden
};

LmHeadPlans& plans() {
  static LmHeadPlans* p = new LmHeadPlans();  // never destroyed: no teardown-order issues at exit
  return *p;
}

Status plan_for(const LmHeadArgs& a, const LtGemm** out) {
  int device = 0;
  FP8LM_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  LmHeadPlans& p = plans();
  std::lock_guard<std::mutex> lock(p.mutex);
  auto key = std::make_tuple(device, a.n, a.vocab, a.hidden);
  if (auto it = p.plans.find(key); it != p.plans.end()) {
    *out = it->second.get();
    return Status::Ok();
  }
  std::unique_ptr<LtContext>& ctx = p.contexts[device];
  if (!ctx) FP8LM_RETURN_IF_ERROR(LtContext::create(&ctx));
  std::unique_ptr<LtGemm> gemm;
  const Status s = LtGemm::create(*ctx, LtKind::kBf16, a.n, a.vocab, a.hidden, {}, &gemm, LtOutput::kF32);
  if (!s.ok()) return Status::Error("lm_head (n = " + std::to_string(a.n) + ", hidden = " + std::to_string(a.hidden) +
                                    ", vocab = " + std::to_string(a.vocab) + "): " + s.message());
  *out = gemm.get();
  p.plans.emplace(key, std::move(gemm));
  return Status::Ok();
}

}  // namespace

Status lm_head(const LmHeadArgs& a, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  if (a.n == 0) return Status::Ok();
  if (a.hidden % 8 != 0)
    return Status::Error("lm_head: hidden = " + std::to_string(a.hidden) + " must be a multiple of 8 (cuBLASLt alignment)");
  const LtGemm* gemm = nullptr;
  FP8LM_RETURN_IF_ERROR(plan_for(a, &gemm));
  return gemm->run(a.x, nullptr, a.weight, nullptr, a.logits, stream);
}

}  // namespace fp8lm
