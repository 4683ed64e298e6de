// The paged KV cache: fixed-size pages of K and V rows in one pool per layer, a free-list
// allocator of page ids shared by all layers (page p of layer l is rows p * page_size ..
// (p + 1) * page_size - 1 of layer l's K and V arrays), and per sequence a block table mapping its
// rows to pages (fp8lm/layer_ops.h: paged_row). The model serves one sequence today; pages and
// tables are what a scheduler needs to hold several in the same pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/model/backend.h"
#include "fp8lm/layer_ops.h"
#include "fp8lm/status.h"

namespace fp8lm {

// Rows (tokens) per page. The GPU's flash prefill kernel reads keys in tiles of kKvPageMultiple
// (64) rows and looks up one page per tile, so a page must be a multiple of that; the smallest
// such size wastes the least (at most 63 rows per sequence) and lets a scheduler pack the most
// sequences into the pool. Larger pages would only save table lookups, already one per 64 keys.
inline constexpr int kKvPageSize = 64;
static_assert(kKvPageSize % kKvPageMultiple == 0, "GPU attention needs pages of whole key tiles");

// Hands out the page ids 0 .. total - 1. A fresh allocator gives them in increasing order;
// released pages are handed out again first, in the order they were released in.
class PageAllocator {
 public:
  explicit PageAllocator(int total_pages);

  int total_pages() const { return total_; }
  int free_pages() const { return static_cast<int>(free_.size()); }
  // Appends `count` page ids to *pages. When fewer are free, fails with an error naming the pages
  // needed and free, and allocates nothing.
  Status allocate(int count, std::vector<std::int32_t>* pages);
  // Returns pages (each allocated by this allocator and not yet released) to the free list.
  void release(const std::int32_t* pages, std::size_t count);

 private:
  int total_;
  std::vector<std::int32_t> free_;  // a stack: back() is handed out next
};

// The K and V pools of every layer, `pages` pages of `page_size` rows of kv_width bf16 each, and
// the allocator of their page ids.
class KvCache {
 public:
  static Status create(Backend& backend, int layers, int kv_width, int pages, int page_size,
                       std::unique_ptr<KvCache>* out);
  // The bytes create() allocates, and those of one layer's K (or V) array.
  static std::size_t bytes(int layers, int kv_width, int pages, int page_size);
  static std::size_t array_bytes(int kv_width, int pages, int page_size);

  bf16* k(int layer) const { return k_[layer].as<bf16>(); }  // [pages * page_size, kv_width]
  bf16* v(int layer) const { return v_[layer].as<bf16>(); }
  int page_size() const { return page_size_; }
  PageAllocator& allocator() { return allocator_; }

 private:
  KvCache(int pages, int page_size) : page_size_(page_size), allocator_(pages) {}
  int page_size_;
  PageAllocator allocator_;
  std::vector<BackendBuffer> k_, v_;
};

// One sequence's pages: its block table on the host and in backend memory (int32 [max_pages],
// at a fixed address, so a recorded CUDA graph reads the current table at every replay). Holds
// a reference to the cache, which must outlive it; releases its pages when destroyed.
class KvSequence {
 public:
  // max_pages: the longest table (sequence) allowed.
  static Status create(Backend& backend, KvCache& cache, int max_pages, std::unique_ptr<KvSequence>* out);
  ~KvSequence();
  KvSequence(const KvSequence&) = delete;
  KvSequence& operator=(const KvSequence&) = delete;

  // Maps rows 0 .. rows - 1: allocates the missing pages and enqueues the upload of the table, so
  // later backend operations see it. Fails, changing nothing, when rows exceed max_rows() or the
  // cache lacks free pages (the error names the pages needed and free).
  Status reserve(int rows);
  // Keeps the pages of rows 0 .. rows - 1 and releases the others (their device table entries
  // stay as they were: nothing reads rows past the sequence, and reserve() uploads anew).
  void truncate(int rows);

  const std::vector<std::int32_t>& pages() const { return pages_; }
  const std::int32_t* device_table() const { return table_.as<std::int32_t>(); }
  // The backend bytes of the block table create() allocates.
  static std::size_t table_bytes(int max_pages) { return static_cast<std::size_t>(max_pages) * sizeof(std::int32_t); }
  int page_size() const { return cache_.page_size(); }
  int capacity() const { return static_cast<int>(pages_.size()) * cache_.page_size(); }  // rows mapped
  int max_rows() const { return max_pages_ * cache_.page_size(); }

 private:
  KvSequence(Backend& backend, KvCache& cache, int max_pages)
      : backend_(backend), cache_(cache), max_pages_(max_pages) {}
  Backend& backend_;
  KvCache& cache_;
  int max_pages_;
  std::vector<std::int32_t> pages_;  // the block table: row r is in page pages_[r / page_size]
  BackendBuffer table_;              // int32 [max_pages]; entries past pages_.size() unused
};

}  // namespace fp8lm
