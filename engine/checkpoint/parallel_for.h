// Runs fn(i) for i in [0, count) on all hardware threads, handing out indices one at a time so
// uneven jobs (a 50 MB gate_up next to a 1 KB norm) still balance.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace fp8lm {

template <typename Fn>
void parallel_for(std::size_t count, Fn&& fn) {
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
