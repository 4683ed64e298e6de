#include "gemm/cublaslt.h"

#include <cuda_runtime_api.h>

#include <string>

#include "fp8lm/cuda_status.h"

namespace fp8lm {

namespace {
Status lt_status(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return Status::Ok();
  return Status::Error(std::string(what) + ": " + cublasLtGetStatusName(s) + " (" + cublasLtGetStatusString(s) + ")");
}
#define LT_RETURN_IF_ERROR(call) FP8LM_RETURN_IF_ERROR(lt_status((call), #call))

template <typename T>
Status set_attr(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const T& value) {
  return lt_status(cublasLtMatmulDescSetAttribute(d, attr, &value, sizeof(value)), "cublasLtMatmulDescSetAttribute");
}
}  // namespace

std::string LtScaleLayout::describe() const {
  return std::string("activation scales ") + (a_transposed ? "[ceil(k/128), m]" : "[m, ceil(k/128)]") +
         ", weight scales " + (b_transposed ? "[ceil(k/128), ceil(n/128)]" : "[ceil(n/128), ceil(k/128)]");
}

Status LtContext::create(std::unique_ptr<LtContext>* out) {
  auto ctx = std::unique_ptr<LtContext>(new LtContext());
  LT_RETURN_IF_ERROR(cublasLtCreate(&ctx->handle_));
  FP8LM_CUDA_RETURN_IF_ERROR(cudaMalloc(&ctx->workspace_, kWorkspaceBytes));
  *out = std::move(ctx);
  return Status::Ok();
}

LtContext::~LtContext() {
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

LtGemm::~LtGemm() {
  if (d_) cublasLtMatrixLayoutDestroy(d_);
  if (b_) cublasLtMatrixLayoutDestroy(b_);
  if (a_) cublasLtMatrixLayoutDestroy(a_);
  if (desc_) cublasLtMatmulDescDestroy(desc_);
}

Status LtGemm::create(const LtContext& ctx, LtKind kind, int m, int n, int k, LtScaleLayout layout,
                      std::unique_ptr<LtGemm>* out, LtOutput output) {
  if (output == LtOutput::kF32 && kind != LtKind::kBf16)
    return Status::Error("unsupported: fp32 output is offered for bf16 inputs only");
  auto g = std::unique_ptr<LtGemm>(new LtGemm());
  g->ctx_ = &ctx;
  g->kind_ = kind;
  const cudaDataType_t in_type = kind == LtKind::kBf16 ? CUDA_R_16BF : CUDA_R_8F_E4M3;
  LT_RETURN_IF_ERROR(cublasLtMatmulDescCreate(&g->desc_, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  FP8LM_RETURN_IF_ERROR(set_attr(g->desc_, CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T));
  FP8LM_RETURN_IF_ERROR(set_attr(g->desc_, CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N));
  if (kind == LtKind::kFp8Tensorwise) {
    // The peak measurement: fast accumulation (no periodic promotion), the fastest FP8 path.
    FP8LM_RETURN_IF_ERROR(set_attr(g->desc_, CUBLASLT_MATMUL_DESC_FAST_ACCUM, static_cast<int8_t>(1)));
  }
  if (kind == LtKind::kFp8Blockwise) {
    // cuBLASLt's A is our weights (128x128 blocks), its B our activations (1x128 groups).
    FP8LM_RETURN_IF_ERROR(set_attr(g->desc_, CUBLASLT_MATMUL_DESC_A_SCALE_MODE,
                                   static_cast<int32_t>(CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F)));
    FP8LM_RETURN_IF_ERROR(set_attr(g->desc_, CUBLASLT_MATMUL_DESC_B_SCALE_MODE,
                                   static_cast<int32_t>(CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F)));
  }
  (void)layout;  // the layout changes only what the caller passes as scale pointers
  if (kind == LtKind::kFp8Blockwise) {
    // cuBLASLt refuses the heuristic query (INVALID_VALUE) while block-scale pointers are unset;
    // placeholders (the workspace) stand in until run() sets the real ones.
    FP8LM_RETURN_IF_ERROR(set_attr(g->desc_, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(ctx.workspace())));
    FP8LM_RETURN_IF_ERROR(set_attr(g->desc_, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(ctx.workspace())));
  }
  LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&g->a_, in_type, k, n, k));
  LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&g->b_, in_type, k, m, k));
  const cudaDataType_t out_type = output == LtOutput::kF32 ? CUDA_R_32F : CUDA_R_16BF;
  LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&g->d_, out_type, n, m, n));

  cublasLtMatmulPreference_t pref = nullptr;
  LT_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&pref));
  const std::size_t ws = ctx.workspace_bytes();
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  // The scale pointers take part in algorithm selection only through the scale modes set above.
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(ctx.handle(), g->desc_, g->a_, g->b_, g->d_, g->d_, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0)
    return Status::Error(std::string("unsupported: cuBLASLt has no algorithm (") +
                         (st != CUBLAS_STATUS_SUCCESS ? cublasLtGetStatusName(st) : "0 results") + ")");
  g->algo_ = result.algo;
  *out = std::move(g);
  return Status::Ok();
}

Status LtGemm::run(const void* a, const float* a_scales, const void* b, const float* b_scales, void* out,
                   cudaStream_t stream) const {
  if (kind_ == LtKind::kFp8Blockwise) {
    FP8LM_RETURN_IF_ERROR(set_attr(desc_, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(b_scales)));
    FP8LM_RETURN_IF_ERROR(set_attr(desc_, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(a_scales)));
  }
  const float alpha = 1.0f, beta = 0.0f;
  return lt_status(cublasLtMatmul(ctx_->handle(), desc_, &alpha, b, a_, a, b_, &beta, out, d_, out, d_, &algo_,
                                  ctx_->workspace(), ctx_->workspace_bytes(), stream),
                   "cublasLtMatmul");
}

}  // namespace fp8lm
