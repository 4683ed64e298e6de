// Timing device work the way every fp8lm benchmark does (DESIGN.md "Measuring"): warm up, capture
// many launches into one CUDA graph (rotating over several buffer sets so the working set exceeds
// L2), replay it several times timed with events, report the median time per launch.
#pragma once

#include <cuda_runtime_api.h>

#include <functional>

#include "fp8lm/status.h"

namespace fp8lm::bench {

struct Timing {
  double median_us = 0;  // per launch
  double min_us = 0;
  double max_us = 0;
  int launches_per_graph = 0;
  int replays = 0;
};

// `launch(set, stream)` enqueues one run on buffer set `set` (0 <= set < sets).
// The graph holds enough launches to last about `graph_target_us`.
Status time_with_graph(const std::function<Status(int set, cudaStream_t)>& launch, int sets, int replays,
                       Timing* result, double graph_target_us = 3000.0);

}  // namespace fp8lm::bench
