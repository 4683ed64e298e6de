#include "bench/graph_timer.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "fp8lm/cuda_status.h"

namespace fp8lm::bench {

namespace {

// Owns the stream, events and graph of one measurement, released on every path.
struct GraphResources {
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ~GraphResources() {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
    if (stream) cudaStreamDestroy(stream);
  }
};

}  // namespace

Status time_with_graph(const std::function<Status(int, cudaStream_t)>& launch, int sets, int replays,
                       Timing* result, double graph_target_us) {
  GraphResources r;
  FP8LM_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&r.stream, cudaStreamNonBlocking));
  FP8LM_CUDA_RETURN_IF_ERROR(cudaEventCreate(&r.start));
  FP8LM_CUDA_RETURN_IF_ERROR(cudaEventCreate(&r.stop));

  // Warm-up (module load, handles, caches) and a rough time per launch, outside any graph.
  for (int s = 0; s < sets; ++s) FP8LM_RETURN_IF_ERROR(launch(s, r.stream));
  FP8LM_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(r.stream));
  const int probe = std::max(sets, 3);
  FP8LM_CUDA_RETURN_IF_ERROR(cudaEventRecord(r.start, r.stream));
  for (int i = 0; i < probe; ++i) FP8LM_RETURN_IF_ERROR(launch(i % sets, r.stream));
  FP8LM_CUDA_RETURN_IF_ERROR(cudaEventRecord(r.stop, r.stream));
  FP8LM_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(r.stop));
  float probe_ms = 0;
  FP8LM_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&probe_ms, r.start, r.stop));
  const double eager_us = std::max(1.0, 1000.0 * probe_ms / probe);

  // At least one launch per set, and enough to make the graph last ~graph_target_us.
  const int per_graph = std::clamp(static_cast<int>(std::ceil(graph_target_us / eager_us)), sets, std::max(sets, 2000));
  FP8LM_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(r.stream, cudaStreamCaptureModeThreadLocal));
  Status captured = Status::Ok();
  for (int i = 0; i < per_graph && captured.ok(); ++i) captured = launch(i % sets, r.stream);
  const cudaError_t end = cudaStreamEndCapture(r.stream, &r.graph);
  FP8LM_RETURN_IF_ERROR(captured);
  FP8LM_CUDA_RETURN_IF_ERROR(end);
  FP8LM_CUDA_RETURN_IF_ERROR(cudaGraphInstantiate(&r.exec, r.graph, 0));
  FP8LM_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(r.exec, r.stream));  // warm replay
  FP8LM_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(r.stream));

  std::vector<double> per_launch_us;
  for (int i = 0; i < replays; ++i) {
    FP8LM_CUDA_RETURN_IF_ERROR(cudaEventRecord(r.start, r.stream));
    FP8LM_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(r.exec, r.stream));
    FP8LM_CUDA_RETURN_IF_ERROR(cudaEventRecord(r.stop, r.stream));
    FP8LM_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(r.stop));
    float ms = 0;
    FP8LM_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, r.start, r.stop));
    per_launch_us.push_back(1000.0 * ms / per_graph);
  }
  std::sort(per_launch_us.begin(), per_launch_us.end());
  result->median_us = per_launch_us[per_launch_us.size() / 2];
  result->min_us = per_launch_us.front();
  result->max_us = per_launch_us.back();
  result->launches_per_graph = per_graph;
  result->replays = replays;
  return Status::Ok();
}

}  // namespace fp8lm::bench
