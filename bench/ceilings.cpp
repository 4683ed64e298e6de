#include "bench/ceilings.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "bench/device_kernels.h"
#include "bench/graph_timer.h"
#include "fp8lm/cuda_status.h"
#include "fp8lm/device_buffer.h"
#include "gemm/cublaslt.h"

namespace fp8lm::bench {

namespace {

// Median bandwidth of `replays` eager cudaMemcpyAsync device-to-device copies, timed with events.
Status eager_copy_gbps(void* dst, const void* src, std::size_t bytes, int replays, double* gbps) {
  cudaEvent_t start = nullptr, stop = nullptr;
  Status s = cuda_status(cudaEventCreate(&start), "cudaEventCreate");
  if (s.ok()) s = cuda_status(cudaEventCreate(&stop), "cudaEventCreate");
  std::vector<float> ms;
  for (int r = 0; r <= replays && s.ok(); ++r) {  // r == 0 warms up
    s = cuda_status(cudaEventRecord(start), "cudaEventRecord");
    if (s.ok()) s = cuda_status(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpyAsync");
    if (s.ok()) s = cuda_status(cudaEventRecord(stop), "cudaEventRecord");
    if (s.ok()) s = cuda_status(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float t = 0;
    if (s.ok()) s = cuda_status(cudaEventElapsedTime(&t, start, stop), "cudaEventElapsedTime");
    if (s.ok() && r > 0) ms.push_back(t);
  }
  if (start) cudaEventDestroy(start);
  if (stop) cudaEventDestroy(stop);
  FP8LM_RETURN_IF_ERROR(s);
  std::sort(ms.begin(), ms.end());
  *gbps = 2.0 * bytes / (ms[ms.size() / 2] * 1e6);
  return Status::Ok();
}

}  // namespace

Status measure_ceilings(const LtContext& lt, int replays, Ceilings* c) {
  {
    DeviceBuffer<std::uint8_t> src(kCeilingCopyBytes), dst(kCeilingCopyBytes);
    FP8LM_RETURN_IF_ERROR(fill_random_fp8(reinterpret_cast<fp8_e4m3*>(src.get()), kCeilingCopyBytes, 1, nullptr));
    Timing t;
    FP8LM_RETURN_IF_ERROR(time_with_graph(
        [&](int, cudaStream_t s) { return copy_bytes(dst.get(), src.get(), kCeilingCopyBytes, s); }, 1, replays, &t,
        20000.0));
    double eager = 0;
    FP8LM_RETURN_IF_ERROR(eager_copy_gbps(dst.get(), src.get(), kCeilingCopyBytes, replays, &eager));
    c->copy_gbps = std::max(2.0 * kCeilingCopyBytes / (t.median_us * 1e3), eager);
  }
  std::unique_ptr<LtGemm> peak;
  FP8LM_RETURN_IF_ERROR(LtGemm::create(lt, LtKind::kFp8Tensorwise, kPeakM, kPeakN, kPeakK, {}, &peak));
  DeviceBuffer<fp8_e4m3> a(static_cast<std::size_t>(kPeakM) * kPeakK), b(static_cast<std::size_t>(kPeakN) * kPeakK);
  DeviceBuffer<bf16> out(static_cast<std::size_t>(kPeakM) * kPeakN);
  FP8LM_RETURN_IF_ERROR(fill_random_fp8(a.get(), a.size(), 2, nullptr));
  FP8LM_RETURN_IF_ERROR(fill_random_fp8(b.get(), b.size(), 3, nullptr));
  Timing t;
  FP8LM_RETURN_IF_ERROR(time_with_graph(
      [&](int, cudaStream_t s) { return peak->run(a.get(), nullptr, b.get(), nullptr, out.get(), s); }, 1, replays,
      &t, 20000.0));
  c->fp8_tflops = 2.0 * kPeakM * kPeakN * kPeakK / (t.median_us * 1e6);
  return Status::Ok();
}

Status measure_ceilings(int replays, Ceilings* out) {
  std::unique_ptr<LtContext> lt;
  FP8LM_RETURN_IF_ERROR(LtContext::create(&lt));
  return measure_ceilings(*lt, replays, out);
}

}  // namespace fp8lm::bench
