// The lm_head op: logits [n, vocab] (fp32) = x [n, hidden] (bf16) . weight [vocab, hidden]^T (bf16),
// fp32 accumulation. It also computes the MoE router's logits (128 x 2048 weights per layer).
//  - Small products (a few tokens, weights up to kRowKernelMaxBytes: the router) run a warp per
//    weight row: such a product is all latency (0.5 MB), cuBLASLt's kernel took 6.1 us there on an
//    H200 (294 us over 48 layers in bench/results/
//    profile-2026-11-28-nvidia-h200-qwen3-30b-a3b-input1-before-decode-latency.txt) and does not
//    take part in programmatic dependent launch, so the kernel after it could not start early.
//    Each lane loads its first kRowPreload weight vectors before pdl_wait (weights are no kernel's
//    output), so at decode they arrive while the previous kernel runs.
//  - Everything else (the vocabulary projection: 0.3-1.6 GB of weights) goes through cuBLASLt, at
//    the copy bandwidth. One cuBLASLt handle + workspace per device and one plan per shape, created
//    on first use and kept for the life of the process. NOTES: the first call for a shape
//    allocates (cudaMalloc) and queries the heuristic, so it must not happen inside a CUDA graph
//    capture; warm each shape up before capturing.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "common/bf16_vec.cuh"
#include "common/pdl.cuh"
#include "fp8lm/cuda_status.h"
#include "fp8lm/layer_ops.h"
#include "gemm/cublaslt.h"

namespace fp8lm {

namespace {

constexpr int kRowWarps = 4;
constexpr int kRowMaxTokens = 8;
constexpr std::size_t kRowKernelMaxBytes = std::size_t{8} << 20;
constexpr int kRowPreload = 8;  // 16-byte weight vectors per lane: a 2048-wide row entirely
constexpr int kVec = 8;         // bf16 per 16-byte vector

__global__ void __launch_bounds__(kRowWarps * 32)
    lm_head_rows_kernel(const bf16* x, const bf16* __restrict__ weight, float* logits, int n, int hidden, int vocab) {
  const int row = blockIdx.x * kRowWarps + threadIdx.x / 32, lane = threadIdx.x % 32;
  const int vectors = hidden / kVec;
  const uint4* wr = reinterpret_cast<const uint4*>(weight + static_cast<std::size_t>(min(row, vocab - 1)) * hidden);
  uint4 w_pre[kRowPreload];
#pragma unroll
  for (int i = 0; i < kRowPreload; ++i)
    if (lane + 32 * i < vectors) w_pre[i] = __ldg(wr + lane + 32 * i);
  pdl_wait();
  pdl_launch_dependents();
  if (row >= vocab) return;
  for (int t = 0; t < n; ++t) {
    const uint4* xr = reinterpret_cast<const uint4*>(x + static_cast<std::size_t>(t) * hidden);
    float acc = 0.0f;
#pragma unroll
    for (int i = 0; i < kRowPreload; ++i)
      if (lane + 32 * i < vectors) {
        float a[kVec], b[kVec];
        vec::unpack8(xr[lane + 32 * i], a);
        vec::unpack8(w_pre[i], b);
#pragma unroll
        for (int k = 0; k < kVec; ++k) acc = fmaf(a[k], b[k], acc);
      }
    for (int v = lane + 32 * kRowPreload; v < vectors; v += 32) {
      float a[kVec], b[kVec];
      vec::unpack8(xr[v], a);
      vec::unpack8(__ldg(wr + v), b);
#pragma unroll
      for (int k = 0; k < kVec; ++k) acc = fmaf(a[k], b[k], acc);
    }
    acc = vec::warp_butterfly_sum(acc);
    if (lane == 0) logits[static_cast<std::size_t>(t) * vocab + row] = acc;
  }
}

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
  const std::size_t weight_bytes = static_cast<std::size_t>(a.vocab) * a.hidden * sizeof(bf16);
  if (a.n <= kRowMaxTokens && weight_bytes <= kRowKernelMaxBytes && vec::aligned16(a.x) && vec::aligned16(a.weight))
    return cuda_status(launch_pdl(lm_head_rows_kernel, ceil_div(a.vocab, kRowWarps), kRowWarps * 32, 0, stream, a.x,
                                  a.weight, a.logits, a.n, a.hidden, a.vocab),
                       "lm_head launch");
  const LtGemm* gemm = nullptr;
  FP8LM_RETURN_IF_ERROR(plan_for(a, &gemm));
  return gemm->run(a.x, nullptr, a.weight, nullptr, a.logits, stream);
}

}  // namespace fp8lm
