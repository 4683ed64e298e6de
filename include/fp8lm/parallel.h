// Splitting CPU work over the hardware threads (the CPU twins, checkpoint loading and writing).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace fp8lm {

// Runs fn(begin, end) over contiguous, equal chunks of [0, total), one per thread
// (threads <= 0: all hardware threads). For uniform work such as rows of a GEMM.
template <typename Fn>
void parallel_ranges(long long total, Fn fn, int threads = 0) {
  long long n = threads > 0 ? threads : static_cast<long long>(std::max(1u, std::thread::hardware_concurrency()));
  n = std::max(1LL, std::min(n, total));
  if (n == 1) {
    if (total > 0) fn(0LL, total);
    return;
  }
  const long long chunk = (total + n - 1) / n;
  std::vector<std::thread> pool;
  for (long long t = 0; t < n; ++t) {
    const long long begin = t * chunk, end = std::min(total, begin + chunk);
    if (begin < end) pool.emplace_back(fn, begin, end);
  }
  for (std::thread& th : pool) th.join();
}

// Runs fn(i) for i in [0, count) on all hardware threads, handing out indices one at a time so
// uneven jobs (a 50 MB gate_up next to a 1 KB norm) still balance.
template <typename Fn>
void parallel_for_each(std::size_t count, Fn&& fn) {
  const std::size_t threads = std::min<std::size_t>(count, std::max(1u, std::thread::hardware_concurrency()));
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i = next++; i < count; i = next++) fn(i);
  };
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
}

}  // namespace fp8lm
