#include "bench/kernel_trace.h"

#include <cupti.h>
#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace fp8lm::bench {

std::vector<TimedKernel> step_timeline(std::vector<TracedKernel> kernels) {
  std::sort(kernels.begin(), kernels.end(), [](const TracedKernel& a, const TracedKernel& b) {
    return a.start_ns != b.start_ns ? a.start_ns < b.start_ns : a.end_ns < b.end_ns;
  });
  std::vector<TimedKernel> timeline;
  timeline.reserve(kernels.size());
  std::uint64_t latest_end = kernels.empty() ? 0 : kernels.front().start_ns;  // of the kernels so far
  for (TracedKernel& k : kernels) {
    k.end_ns = std::max(k.end_ns, k.start_ns);
    const double added =
        k.end_ns > latest_end ? 1e-3 * static_cast<double>(k.end_ns - std::max(latest_end, k.start_ns)) : 0.0;
    latest_end = std::max(latest_end, k.end_ns);
    timeline.push_back({std::move(k), added});
  }
  return timeline;
}

StepSummary summarize_step(std::vector<TracedKernel> kernels, std::vector<KernelShare>* shares) {
  StepSummary s;
  const std::vector<TimedKernel> timeline = step_timeline(std::move(kernels));
  if (timeline.empty()) return s;
  s.kernels = static_cast<int>(timeline.size());
  const std::uint64_t first = timeline.front().kernel.start_ns;
  std::uint64_t latest_end = first;
  for (const TimedKernel& t : timeline) {
    const TracedKernel& k = t.kernel;
    if (k.start_ns > latest_end) s.idle_us += 1e-3 * static_cast<double>(k.start_ns - latest_end);
    latest_end = std::max(latest_end, k.end_ns);
    auto it = std::find_if(shares->begin(), shares->end(), [&](const KernelShare& x) { return x.name == k.name; });
    if (it == shares->end()) it = shares->insert(shares->end(), KernelShare{k.name});
    it->launches += 1;
    it->busy_us += 1e-3 * static_cast<double>(k.end_ns - k.start_ns);
    it->added_us += t.added_us;
  }
  s.span_us = 1e-3 * static_cast<double>(latest_end - first);
  return s;
}

std::string short_kernel_name(const std::string& name) {
  std::string s = name;
  if (s.rfind("_Z", 0) == 0) {
    int status = 0;
    std::unique_ptr<char, decltype(&std::free)> demangled(abi::__cxa_demangle(s.c_str(), nullptr, nullptr, &status),
                                                          &std::free);
    if (status == 0 && demangled) s = demangled.get();
  }
  // The parameter list: from the first '(' outside template brackets.
  int depth = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<') ++depth;
    if (s[i] == '>') --depth;
    if (s[i] == '(' && depth == 0 && s.compare(i, 21, "(anonymous namespace)") != 0) {
      s.resize(i);
      break;
    }
  }
  if (s.rfind("void ", 0) == 0) s.erase(0, 5);
  // Namespaces of the kernel itself (not of template arguments): up to the last "::" before '<'.
  const std::size_t bracket = s.find('<');
  const std::size_t colons = s.rfind("::", bracket == std::string::npos ? std::string::npos : bracket);
  if (colons != std::string::npos) s.erase(0, colons + 2);
  return s;
}

namespace {

constexpr std::size_t kBufferBytes = std::size_t{8} << 20;
constexpr std::size_t kBufferAlign = 8;  // CUPTI's activity buffers: 8-byte aligned

std::mutex records_mutex;
std::optional<std::vector<TracedKernel>> records;  // open between begin() and end()

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(kBufferAlign, kBufferBytes));
  *size = *buffer != nullptr ? kBufferBytes : 0;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* record = nullptr;
  {
    std::lock_guard<std::mutex> lock(records_mutex);
    while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
      if (record->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && record->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
      const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
      if (records) records->push_back({short_kernel_name(k->name ? k->name : "?"), k->start, k->end});
    }
  }
  std::free(buffer);
}

Status cupti_status(CUptiResult r, const char* what) {
  if (r == CUPTI_SUCCESS) return Status::Ok();
  const char* message = nullptr;
  cuptiGetResultString(r, &message);
  return Status::Error(std::string("kernel trace: ") + what + ": " + (message ? message : "CUPTI error"));
}

}  // namespace

Status KernelTracer::begin() {
  static std::once_flag once;
  static CUptiResult registered = CUPTI_SUCCESS;
  std::call_once(once, [] { registered = cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed); });
  FP8LM_RETURN_IF_ERROR(cupti_status(registered, "registering the activity buffers"));
  {
    std::lock_guard<std::mutex> lock(records_mutex);
    if (records) return Status::Error("kernel trace: begin() while a trace is open");
    records.emplace();
  }
  return cupti_status(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "enabling kernel records");
}

Status KernelTracer::end(std::vector<TracedKernel>* kernels) {
  const Status disabled = cupti_status(cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "disabling");
  const Status flushed = cupti_status(cuptiActivityFlushAll(1), "flushing the records");
  std::optional<std::vector<TracedKernel>> got;
  {
    std::lock_guard<std::mutex> lock(records_mutex);
    got.swap(records);
  }
  FP8LM_RETURN_IF_ERROR(disabled);
  FP8LM_RETURN_IF_ERROR(flushed);
  if (!got) return Status::Error("kernel trace: end() without begin()");
  *kernels = std::move(*got);
  return Status::Ok();
}

}  // namespace fp8lm::bench
