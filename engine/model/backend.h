// Where a model runs: the CPU (the reference twins, multi-threaded) or a CUDA GPU (our kernels).
// Both expose the same operations on raw pointers in their own memory, so the model is written
// once (engine/model/qwen3_model.cpp) and runs on either.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "fp8lm/decode_layers.h"
#include "fp8lm/gemm.h"
#include "fp8lm/grouped_gemm.h"
#include "fp8lm/mlp_ops.h"
#include "fp8lm/layer_ops.h"
#include "fp8lm/moe_ops.h"
#include "fp8lm/quant.h"
#include "fp8lm/status.h"

namespace fp8lm {

enum class DeviceKind { kCpu, kCuda };

// Parses "cpu" / "cuda"; anything else is an error naming the accepted values.
Status parse_device_kind(const std::string& text, DeviceKind* out);

// Operations recorded once and run again with one call (CUDA graphs). Replays read their inputs
// where the recorded operations read them: device buffers and page-locked host memory.
class BackendGraph {
 public:
  virtual ~BackendGraph() = default;
  // Enqueues one replay; synchronize() waits for it.
  virtual Status launch() = 0;
};

class Backend {
 public:
  // kCuda fails with a clear error when there is no usable FP8 GPU.
  static Status create(DeviceKind kind, std::unique_ptr<Backend>* out);
  virtual ~Backend() = default;

  virtual DeviceKind kind() const = 0;
  virtual std::string describe() const = 0;  // e.g. "cuda: NVIDIA H200 (sm_90)" or "cpu: 16 threads"
  // Bytes the backend can still allocate (the GPU's free memory; the CPU's available RAM).
  virtual std::size_t available_bytes() const = 0;

  virtual Status allocate(std::size_t bytes, void** out) = 0;
  virtual void release(void* p) = 0;
  // Page-locked host memory (the CPU: ordinary memory): what copies recorded in a graph must use.
  virtual Status allocate_host(std::size_t bytes, void** out) = 0;
  virtual void release_host(void* p) = 0;
  // Enqueues the copy; later operations see it (the host buffer is read before upload returns,
  // unless it is page-locked: then when the copy runs).
  virtual Status upload(void* dst, const void* host_src, std::size_t bytes) = 0;
  // Copies to the host and waits for it.
  virtual Status download(void* host_dst, const void* src, std::size_t bytes) = 0;
  // Enqueues the copy to page-locked host memory without waiting (synchronize() does).
  virtual Status download_async(void* host_dst, const void* src, std::size_t bytes) = 0;
  virtual Status synchronize() = 0;
  // Marks slot `slot` (0 <= slot < kMarkSlots) at the end of what is enqueued so far;
  // wait_mark(slot) returns once that work has run, while later work may still run. The CPU runs
  // each operation as it is enqueued: both return at once there.
  static constexpr int kMarkSlots = 2;
  virtual Status mark(int /*slot*/) { return Status::Ok(); }
  virtual Status wait_mark(int /*slot*/) { return Status::Ok(); }

  // Whether capture_graph works here (CUDA yes, the CPU no).
  virtual bool supports_graphs() const { return false; }
  // Runs `record`, whose operations are recorded into a graph instead of running (none runs until
  // the graph is launched). `record` must not synchronize or download (download_async is fine);
  // an error from it or from the capture leaves no graph and the backend usable.
  virtual Status capture_graph(const std::function<Status()>& record, std::unique_ptr<BackendGraph>* out);

  virtual Status embed(const EmbedArgs& args) = 0;
  virtual Status rmsnorm(const RmsNormArgs& args) = 0;
  virtual Status quantize(const QuantizeArgs& args) = 0;
  virtual Status gemm(const Fp8GemmArgs& args) = 0;
  // offsets in this backend's memory (device memory on CUDA, where moe_route_plan writes them).
  virtual Status grouped_gemm(const Fp8GroupedGemmArgs& args) = 0;
  virtual Status qk_norm_rope(const QkNormRopeArgs& args) = 0;
  virtual Status attention(const AttentionArgs& args) = 0;
  virtual Status silu_mul(const SiluMulArgs& args) = 0;
  virtual Status add(const AddArgs& args) = 0;
  virtual Status rmsnorm_quantize(const RmsNormQuantizeArgs& args) = 0;
  virtual Status silu_mul_quantize(const SiluMulQuantizeArgs& args) = 0;
  // The gate_up GEMM and silu_mul_quantize of its output (fp8lm/mlp_ops.h; one launch at decode on sm_90).
  virtual Status gate_up_swiglu(const GateUpSwigluArgs& args) = 0;
  virtual Status grouped_gate_up_swiglu(const GroupedGateUpSwigluArgs& args) = 0;
  virtual Status lm_head(const LmHeadArgs& args) = 0;
  virtual Status greedy_token(const GreedyTokenArgs& args) = 0;
  virtual Status moe_route_plan(const MoeRouteArgs& route, const MoePlanArgs& plan) = 0;
  virtual Status moe_combine(const MoeCombineArgs& args) = 0;
  // Every layer of a dense model for one token (fp8lm/decode_layers.h; one persistent kernel on a
  // GPU), for the sizes decode_layers_supported() accepts.
  virtual Status decode_layers(const DecodeLayersArgs& args) = 0;
};

// Memory of one backend (or page-locked host memory it allocated), released with the object.
class BackendBuffer {
 public:
  BackendBuffer() = default;
  BackendBuffer(const BackendBuffer&) = delete;
  BackendBuffer& operator=(const BackendBuffer&) = delete;
  BackendBuffer(BackendBuffer&& o) noexcept { *this = std::move(o); }
  BackendBuffer& operator=(BackendBuffer&& o) noexcept {
    std::swap(backend_, o.backend_);
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    std::swap(host_, o.host_);
    return *this;
  }
  ~BackendBuffer() {
    if (!ptr_) return;
    if (host_)
      backend_->release_host(ptr_);
    else
      backend_->release(ptr_);
  }

  static Status allocate(Backend& backend, std::size_t bytes, BackendBuffer* out) {
    BackendBuffer b;
    b.backend_ = &backend;
    b.bytes_ = bytes;
    FP8LM_RETURN_IF_ERROR(backend.allocate(bytes, &b.ptr_));
    *out = std::move(b);
    return Status::Ok();
  }
  static Status allocate_host(Backend& backend, std::size_t bytes, BackendBuffer* out) {
    BackendBuffer b;
    b.backend_ = &backend;
    b.bytes_ = bytes;
    b.host_ = true;
    FP8LM_RETURN_IF_ERROR(backend.allocate_host(bytes, &b.ptr_));
    *out = std::move(b);
    return Status::Ok();
  }
  // Allocates and fills from host memory.
  static Status from_host(Backend& backend, const void* src, std::size_t bytes, BackendBuffer* out) {
    FP8LM_RETURN_IF_ERROR(allocate(backend, bytes, out));
    return backend.upload(out->ptr_, src, bytes);
  }

  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  std::size_t bytes() const { return bytes_; }

 private:
  Backend* backend_ = nullptr;
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  bool host_ = false;
};

}  // namespace fp8lm
