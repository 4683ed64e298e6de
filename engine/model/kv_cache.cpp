#include "engine/model/kv_cache.h"

#include <algorithm>
#include <string>

namespace fp8lm {

PageAllocator::PageAllocator(int total_pages) : total_(total_pages) {
  free_.reserve(total_pages);
  for (int p = total_pages - 1; p >= 0; --p) free_.push_back(p);
}

Status PageAllocator::allocate(int count, std::vector<std::int32_t>* pages) {
  if (count > free_pages())
    return Status::Error("KV cache full: " + std::to_string(count) + " pages needed, " + std::to_string(free_pages()) +
                         " of " + std::to_string(total_) + " free");
  for (int i = 0; i < count; ++i) {
    pages->push_back(free_.back());
    free_.pop_back();
  }
  return Status::Ok();
}

void PageAllocator::release(const std::int32_t* pages, std::size_t count) {
  for (std::size_t i = count; i-- > 0;) free_.push_back(pages[i]);
}

std::size_t KvCache::array_bytes(int kv_width, int pages, int page_size) {
  return static_cast<std::size_t>(pages) * page_size * kv_width * sizeof(bf16);
}

std::size_t KvCache::bytes(int layers, int kv_width, int pages, int page_size) {
  return 2 * static_cast<std::size_t>(layers) * array_bytes(kv_width, pages, page_size);
}

Status KvCache::create(Backend& backend, int layers, int kv_width, int pages, int page_size,
                       std::unique_ptr<KvCache>* out) {
  if (pages < 1 || page_size < 1)
    return Status::Error("KV cache: pages = " + std::to_string(pages) + " and page_size = " +
                         std::to_string(page_size) + " must be >= 1");
  std::unique_ptr<KvCache> c(new KvCache(pages, page_size));
  const std::size_t per_array = array_bytes(kv_width, pages, page_size);
  c->k_.resize(layers);
  c->v_.resize(layers);
  for (int l = 0; l < layers; ++l) {
    FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate(backend, per_array, &c->k_[l]));
    FP8LM_RETURN_IF_ERROR(BackendBuffer::allocate(backend, per_array, &c->v_[l]));
  }
  *out = std::move(c);
  return Status::Ok();
}

Status KvSequence::create(Backend& backend, KvCache& cache, int max_pages, std::unique_ptr<KvSequence>* out) {
  if (max_pages < 1) return Status::Error("KV sequence: max_pages = " + std::to_string(max_pages) + " must be >= 1");
  std::unique_ptr<KvSequence> s(new KvSequence(backend, cache, max_pages));
  // Unused entries point at page 0 rather than at garbage, so that even a kernel reading past the
  // sequence (a bug) stays inside the pool.
  const std::vector<std::int32_t> zeros(max_pages, 0);
  FP8LM_RETURN_IF_ERROR(BackendBuffer::from_host(backend, zeros.data(), table_bytes(max_pages), &s->table_));
  *out = std::move(s);
  return Status::Ok();
}

KvSequence::~KvSequence() { truncate(0); }

Status KvSequence::reserve(int rows) {
  const int have = static_cast<int>(pages_.size());
  const int need = ceil_div(rows, page_size());
  if (need <= have) return Status::Ok();
  if (need > max_pages_)
    return Status::Error("KV sequence: " + std::to_string(rows) + " rows exceed the block table's " +
                         std::to_string(max_rows()) + " (" + std::to_string(max_pages_) + " pages of " +
                         std::to_string(page_size()) + ")");
  FP8LM_RETURN_IF_ERROR(cache_.allocator().allocate(need - have, &pages_));
  // Only the new entries: the table's first `have` already hold these pages (truncate releases
  // from the end, reserve appends).
  const Status s = backend_.upload(table_.as<std::int32_t>() + have, pages_.data() + have,
                                   static_cast<std::size_t>(need - have) * sizeof(std::int32_t));
  if (!s.ok()) truncate(have * page_size());
  return s;
}

void KvSequence::truncate(int rows) {
  const std::size_t keep = ceil_div(std::max(rows, 0), page_size());
  if (keep >= pages_.size()) return;
  cache_.allocator().release(pages_.data() + keep, pages_.size() - keep);
  pages_.resize(keep);
}

}  // namespace fp8lm
