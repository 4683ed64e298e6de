// Paged KV caches for the layer-op tests (CPU twins and GPU kernels): block tables, contiguous
// and shuffled, and moving cache rows between a contiguous array and a page pool through a table.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "fp8lm/layer_ops.h"
#include "fp8lm/numerics.h"
#include "fp8lm/random.h"

namespace fp8lm::testing {

// The table of a contiguous cache of `rows` rows: {0, 1, 2, ...}.
inline std::vector<std::int32_t> contiguous_table(int rows, int page_size) {
  std::vector<std::int32_t> table(ceil_div(rows, page_size));
  for (std::size_t i = 0; i < table.size(); ++i) table[i] = static_cast<std::int32_t>(i);
  return table;
}

// The pages of `rows` rows drawn in random order from a pool of pool_pages pages, so that
// consecutive pages of the sequence are neither adjacent nor in order and some pool pages are
// not the sequence's.
inline std::vector<std::int32_t> shuffled_table(int rows, int page_size, int pool_pages, Rng& rng) {
  std::vector<std::int32_t> pool(pool_pages);
  for (int i = 0; i < pool_pages; ++i) pool[i] = i;
  for (int i = pool_pages - 1; i > 0; --i) std::swap(pool[i], pool[rng.next() % (i + 1)]);
  pool.resize(ceil_div(rows, page_size));
  return pool;
}

// A pool of pool_pages pages holding cache row r (of `width` elements) at paged_row(table, r) for
// r < rows and `fill` everywhere else.
inline std::vector<bf16> scatter_rows(const std::vector<bf16>& cache, int rows, int width,
                                      const std::vector<std::int32_t>& table, int page_size, int pool_pages,
                                      bf16 fill) {
  std::vector<bf16> pool(static_cast<std::size_t>(pool_pages) * page_size * width, fill);
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < width; ++i)
      pool[paged_row(table.data(), page_size, r) * width + i] = cache[static_cast<std::size_t>(r) * width + i];
  return pool;
}

// The inverse: rows 0 .. rows - 1 of the sequence, read from the pool through the table.
inline std::vector<bf16> gather_rows(const std::vector<bf16>& pool, int rows, int width,
                                     const std::vector<std::int32_t>& table, int page_size) {
  std::vector<bf16> cache(static_cast<std::size_t>(rows) * width);
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < width; ++i)
      cache[static_cast<std::size_t>(r) * width + i] = pool[paged_row(table.data(), page_size, r) * width + i];
  return cache;
}

}  // namespace fp8lm::testing
