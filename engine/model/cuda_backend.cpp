// The CUDA backend: fp8lm's kernels on the current GPU, all on one stream, which can be captured
// into CUDA graphs.
#include <cuda_runtime_api.h>

#include "engine/model/backend.h"
#include "fp8lm/cuda_status.h"
#include "fp8lm/device.h"

namespace fp8lm {

namespace {

Status cuda_error(cudaError_t err, const char* what) {
  if (err != cudaSuccess) cudaGetLastError();  // clear it, so the next call starts clean
  return cuda_status(err, (std::string("cuda backend: ") + what).c_str());
}

class CudaGraph final : public BackendGraph {
 public:
  CudaGraph(cudaGraphExec_t exec, cudaStream_t stream) : exec_(exec), stream_(stream) {}
  ~CudaGraph() override { cudaGraphExecDestroy(exec_); }
  Status launch() override { return cuda_error(cudaGraphLaunch(exec_, stream_), "graph launch"); }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(DeviceInfo device, cudaStream_t stream) : device_(std::move(device)), stream_(stream) {}
  ~CudaBackend() override {
    for (cudaEvent_t e : marks_)
      if (e != nullptr) cudaEventDestroy(e);
    cudaStreamDestroy(stream_);
  }

  DeviceKind kind() const override { return DeviceKind::kCuda; }
  std::string describe() const override {
    return "cuda: " + device_.name + " (sm_" + std::to_string(device_.sm_version()) + ")";
  }
  std::size_t available_bytes() const override {
    std::size_t free_bytes = 0, total = 0;
    return cudaMemGetInfo(&free_bytes, &total) == cudaSuccess ? free_bytes : 0;
  }

  Status allocate(std::size_t bytes, void** out) override {
    return cuda_error(cudaMalloc(out, bytes == 0 ? 16 : bytes), "cudaMalloc");
  }
  void release(void* p) override { cudaFree(p); }
  Status allocate_host(std::size_t bytes, void** out) override {
    return cuda_error(cudaMallocHost(out, bytes == 0 ? 16 : bytes), "cudaMallocHost");
  }
  void release_host(void* p) override { cudaFreeHost(p); }
  Status upload(void* dst, const void* src, std::size_t bytes) override {
    return cuda_error(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "upload");
  }
  Status download(void* dst, const void* src, std::size_t bytes) override {
    FP8LM_RETURN_IF_ERROR(download_async(dst, src, bytes));
    return synchronize();
  }
  Status download_async(void* dst, const void* src, std::size_t bytes) override {
    return cuda_error(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "download");
  }
  Status synchronize() override { return cuda_error(cudaStreamSynchronize(stream_), "synchronize"); }
  Status mark(int slot) override {
    FP8LM_RETURN_IF_ERROR(check_slot(slot));
    if (marks_[slot] == nullptr)
      FP8LM_RETURN_IF_ERROR(cuda_error(cudaEventCreateWithFlags(&marks_[slot], cudaEventDisableTiming), "event"));
    return cuda_error(cudaEventRecord(marks_[slot], stream_), "mark");
  }
  Status wait_mark(int slot) override {
    FP8LM_RETURN_IF_ERROR(check_slot(slot));
    if (marks_[slot] == nullptr) return Status::Error("cuda backend: wait_mark(" + std::to_string(slot) + ") before mark");
    return cuda_error(cudaEventSynchronize(marks_[slot]), "wait_mark");
  }

  bool supports_graphs() const override { return true; }
  // Stream capture in thread-local mode: this thread may not make calls that would synchronize
  // while capturing (they fail, and so does the capture), other threads are unaffected.
  Status capture_graph(const std::function<Status()>& record, std::unique_ptr<BackendGraph>* out) override {
    FP8LM_RETURN_IF_ERROR(
        cuda_error(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "begin graph capture"));
    const Status recorded = record();
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);  // always ends it, even after an error
    if (!recorded.ok() || ended != cudaSuccess) {
      if (graph != nullptr) cudaGraphDestroy(graph);
      cudaGetLastError();  // clear what the failed capture left, so the next call starts clean
      return recorded.ok() ? cuda_error(ended, "end graph capture") : recorded;
    }
    cudaGraphExec_t exec = nullptr;
    const cudaError_t instantiated = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    FP8LM_RETURN_IF_ERROR(cuda_error(instantiated, "graph instantiate"));
    *out = std::make_unique<CudaGraph>(exec, stream_);
    return Status::Ok();
  }

  Status embed(const EmbedArgs& a) override { return fp8lm::embed(a, stream_); }
  Status rmsnorm(const RmsNormArgs& a) override { return fp8lm::rmsnorm(a, stream_); }
  Status quantize(const QuantizeArgs& a) override { return quantize_per_token_group(a, stream_); }
  Status gemm(const Fp8GemmArgs& a) override { return gemm_fp8_blockwise(a, stream_); }
  Status grouped_gemm(const Fp8GroupedGemmArgs& a) override { return gemm_fp8_grouped(a, stream_); }
  Status qk_norm_rope(const QkNormRopeArgs& a) override { return fp8lm::qk_norm_rope(a, stream_); }
  Status attention(const AttentionArgs& a) override { return fp8lm::attention(a, stream_); }
  Status silu_mul(const SiluMulArgs& a) override { return fp8lm::silu_mul(a, stream_); }
  Status add(const AddArgs& a) override { return fp8lm::add(a, stream_); }
  Status rmsnorm_quantize(const RmsNormQuantizeArgs& a) override { return fp8lm::rmsnorm_quantize(a, stream_); }
  Status silu_mul_quantize(const SiluMulQuantizeArgs& a) override { return fp8lm::silu_mul_quantize(a, stream_); }
  Status gate_up_swiglu(const GateUpSwigluArgs& a) override { return fp8lm::gate_up_swiglu(a, stream_); }
  Status grouped_gate_up_swiglu(const GroupedGateUpSwigluArgs& a) override {
    return fp8lm::grouped_gate_up_swiglu(a, stream_);
  }
  Status lm_head(const LmHeadArgs& a) override { return fp8lm::lm_head(a, stream_); }
  Status greedy_token(const GreedyTokenArgs& a) override { return fp8lm::greedy_token(a, stream_); }
  Status moe_route_plan(const MoeRouteArgs& route, const MoePlanArgs& plan) override {
    return fp8lm::moe_route_plan(route, plan, stream_);
  }
  Status moe_combine(const MoeCombineArgs& a) override { return fp8lm::moe_combine(a, stream_); }
  Status decode_layers(const DecodeLayersArgs& a) override { return fp8lm::decode_layers(a, stream_); }

 private:
  static Status check_slot(int slot) {
    if (slot >= 0 && slot < kMarkSlots) return Status::Ok();
    return Status::Error("cuda backend: mark slot " + std::to_string(slot) + " is outside [0, " +
                         std::to_string(kMarkSlots) + ")");
  }
  DeviceInfo device_;
  cudaStream_t stream_;
  cudaEvent_t marks_[kMarkSlots] = {};
};

}  // namespace

Status make_cuda_backend(std::unique_ptr<Backend>* out) {
  std::string why;
  if (!cuda_device_available(&why)) return Status::Error("--device cuda: " + why);
  DeviceInfo device;
  FP8LM_RETURN_IF_ERROR(current_device(&device));
  FP8LM_RETURN_IF_ERROR(check_fp8_support(device));
  cudaStream_t stream = nullptr;
  FP8LM_RETURN_IF_ERROR(cuda_error(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream"));
  *out = std::make_unique<CudaBackend>(std::move(device), stream);
  return Status::Ok();
}

}  // namespace fp8lm
