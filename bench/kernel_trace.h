// `fp8lm bench one-batch --kernel-trace N`: where a decode step's time goes on the GPU with the
// kernels overlapping as they do in a run (CUDA graph replay, programmatic dependent launch). Nsight
// Compute times kernels one at a time, so it counts in full what overlaps in a run and cannot say
// what a kernel adds to a step; CUPTI's activity records give each kernel's start and end on the
// GPU's clock in the run itself. A kernel's share of a step is how far it moves the step's end:
//   added = max(0, end - the latest end of the kernels that started before it),
// so the shares of a step's kernels sum to its span on the GPU (first start to last end, minus
// the idle gaps between kernels, which are reported apart).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fp8lm/status.h"

namespace fp8lm::bench {

struct TracedKernel {
  std::string name;  // short form (short_kernel_name)
  std::uint64_t start_ns = 0, end_ns = 0;
};

struct KernelShare {
  std::string name;
  int launches = 0;
  double busy_us = 0;   // sum of end - start
  double added_us = 0;  // sum of what the launches added to their steps' spans
};

struct StepSummary {
  double span_us = 0;  // first start to last end
  double idle_us = 0;  // time in the span when no kernel ran
  int kernels = 0;
};

// One step's kernels in start order, each with what it added to the step's span.
struct TimedKernel {
  TracedKernel kernel;
  double added_us = 0;
};
std::vector<TimedKernel> step_timeline(std::vector<TracedKernel> kernels);

// One step's kernels (any order): its span and idle time, and per kernel name the launches, busy
// and added time, added onto *shares (created or accumulated by name).
StepSummary summarize_step(std::vector<TracedKernel> kernels, std::vector<KernelShare>* shares);

// A demangled kernel name without namespaces, the anonymous namespace and the parameter list
// ("void fp8lm::sm90::impl::sm90_decode_kernel<16, false, true>(CUtensorMap_st, ...)" ->
// "sm90_decode_kernel<16, false, true>"); a mangled name is demangled first.
std::string short_kernel_name(const std::string& name);

// Collects CUPTI's kernel activity records (CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: launches are not
// serialized) between begin() and end(); one tracer at a time in a process. CUDA only.
class KernelTracer {
 public:
  static Status begin();
  // Flushes CUPTI's buffers and returns the kernels that ran since begin(), in the order CUPTI
  // delivered them (step_timeline orders them).
  static Status end(std::vector<TracedKernel>* kernels);
};

}  // namespace fp8lm::bench
