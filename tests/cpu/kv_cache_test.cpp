// The paged KV cache (engine/model/kv_cache.h) on the CPU backend: the page allocator (order,
// exhaustion with a clear error that allocates nothing, release and reuse), sequences' block
// tables (growth, the table in backend memory, limits, truncate, two sequences sharing a pool), and
// the model's pages as its sequence grows, fails, is truncated and reset.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/checkpoint/dummy_weights.h"
#include "engine/model/kv_cache.h"
#include "engine/model/qwen3_footprint.h"
#include "engine/model/qwen3_model.h"
#include "cpu_backend_for_tests.h"

namespace fp8lm {
namespace {

using Pages = std::vector<std::int32_t>;

TEST(PageAllocator, FillExhaustReleaseReuse) {
  PageAllocator a(8);
  EXPECT_EQ(a.total_pages(), 8);
  Pages got;
  ASSERT_TRUE(a.allocate(3, &got).ok());
  ASSERT_TRUE(a.allocate(3, &got).ok());
  EXPECT_EQ(got, (Pages{0, 1, 2, 3, 4, 5}));  // a fresh pool hands out pages in order
  EXPECT_EQ(a.free_pages(), 2);

  const Status full = a.allocate(3, &got);
  EXPECT_FALSE(full.ok());
  EXPECT_EQ(full.message(), "KV cache full: 3 pages needed, 2 of 8 free");
  EXPECT_EQ(got.size(), 6u) << "a failed allocation hands out nothing";
  EXPECT_EQ(a.free_pages(), 2);

  a.release(got.data() + 1, 2);  // pages 1 and 2
  EXPECT_EQ(a.free_pages(), 4);
  Pages again;
  ASSERT_TRUE(a.allocate(4, &again).ok());
  EXPECT_EQ(again, (Pages{1, 2, 6, 7}));  // released pages first, in the order they were released
  EXPECT_EQ(a.free_pages(), 0);
  EXPECT_FALSE(a.allocate(1, &again).ok());
  EXPECT_TRUE(a.allocate(0, &again).ok());
}

// The table in backend memory (the CPU backend's memory is host memory).
Pages device_table(const KvSequence& s) {
  return Pages(s.device_table(), s.device_table() + s.pages().size());
}

TEST(KvSequence, GrowsByPagesUploadsItsTableAndTruncates) {
  std::unique_ptr<KvCache> cache;
  ASSERT_TRUE(KvCache::create(cpu_backend(), 2, 32, 6, kKvPageSize, &cache).ok());
  std::unique_ptr<KvSequence> s;
  ASSERT_TRUE(KvSequence::create(cpu_backend(), *cache, 4, &s).ok());
  EXPECT_EQ(s->max_rows(), 4 * kKvPageSize);

  ASSERT_TRUE(s->reserve(1).ok());
  EXPECT_EQ(s->pages(), (Pages{0}));
  ASSERT_TRUE(s->reserve(kKvPageSize).ok());  // still one page
  EXPECT_EQ(s->capacity(), kKvPageSize);
  ASSERT_TRUE(s->reserve(kKvPageSize + 1).ok());
  EXPECT_EQ(s->pages(), (Pages{0, 1}));
  EXPECT_EQ(device_table(*s), s->pages());

  const Status too_long = s->reserve(4 * kKvPageSize + 1);
  EXPECT_FALSE(too_long.ok());
  EXPECT_NE(too_long.message().find("exceed the block table's 256 (4 pages of 64)"), std::string::npos)
      << too_long.message();
  EXPECT_EQ(s->pages().size(), 2u);

  s->truncate(kKvPageSize + 1);  // row 64 is in page 1: both stay
  EXPECT_EQ(s->pages().size(), 2u);
  s->truncate(kKvPageSize);
  EXPECT_EQ(s->pages(), (Pages{0}));
  EXPECT_EQ(cache->allocator().free_pages(), 5);
  s->truncate(0);
  EXPECT_TRUE(s->pages().empty());
  EXPECT_EQ(cache->allocator().free_pages(), 6);
}

// Two sequences in one pool: interleaved growth gives each non-adjacent pages, a full pool is an
// error for the sequence that asks (changing nothing), and a destroyed sequence returns its pages.
TEST(KvSequence, SequencesShareThePool) {
  std::unique_ptr<KvCache> cache;
  ASSERT_TRUE(KvCache::create(cpu_backend(), 1, 16, 5, kKvPageSize, &cache).ok());
  std::unique_ptr<KvSequence> a, b;
  ASSERT_TRUE(KvSequence::create(cpu_backend(), *cache, 5, &a).ok());
  ASSERT_TRUE(KvSequence::create(cpu_backend(), *cache, 5, &b).ok());
  for (int rows = kKvPageSize; rows <= 2 * kKvPageSize; rows += kKvPageSize) {
    ASSERT_TRUE(a->reserve(rows).ok());
    ASSERT_TRUE(b->reserve(rows).ok());
  }
  EXPECT_EQ(a->pages(), (Pages{0, 2}));
  EXPECT_EQ(b->pages(), (Pages{1, 3}));
  EXPECT_EQ(device_table(*a), a->pages());
  EXPECT_EQ(device_table(*b), b->pages());

  const Status full = a->reserve(4 * kKvPageSize);
  EXPECT_FALSE(full.ok());
  EXPECT_EQ(full.message(), "KV cache full: 2 pages needed, 1 of 5 free");
  EXPECT_EQ(a->pages(), (Pages{0, 2}));

  b.reset();
  EXPECT_EQ(cache->allocator().free_pages(), 3);
  ASSERT_TRUE(a->reserve(5 * kKvPageSize).ok());
  EXPECT_EQ(a->pages(), (Pages{0, 2, 1, 3, 4}));
  EXPECT_EQ(device_table(*a), a->pages());
}

TEST(KvCache, BadSizesAreErrors) {
  std::unique_ptr<KvCache> cache;
  EXPECT_FALSE(KvCache::create(cpu_backend(), 1, 16, 0, kKvPageSize, &cache).ok());
  ASSERT_TRUE(KvCache::create(cpu_backend(), 1, 16, 1, kKvPageSize, &cache).ok());
  std::unique_ptr<KvSequence> s;
  EXPECT_FALSE(KvSequence::create(cpu_backend(), *cache, 0, &s).ok());
}

// The model holds ceil(length / page) pages: growing, failing, truncating (prefix reuse) and
// resetting its sequence keep that, and its memory estimate counts whole pages.
TEST(ModelKvPages, FollowTheSequence) {
  Qwen3Weights w;
  ASSERT_TRUE(make_dummy_qwen3("tiny", 0, &w).ok());
  std::unique_ptr<Qwen3Model> m;
  ASSERT_TRUE(Qwen3Model::create(w, cpu_backend(), {200, 64}, &m).ok());
  auto pages = [&] { return m->kv_sequence().pages().size(); };
  std::vector<float> logits;
  std::vector<std::int32_t> ids(140);
  for (int i = 0; i < 140; ++i) ids[i] = 17 * i + 3;
  ASSERT_TRUE(m->forward(std::span(ids).first(64), false, &logits).ok());
  EXPECT_EQ(pages(), 1u);
  ASSERT_TRUE(m->forward(std::span(ids).subspan(64, 1), false, &logits).ok());  // row 64 starts page 2
  EXPECT_EQ(pages(), 2u);
  std::vector<std::int32_t> bad = {5, 6, -1};
  EXPECT_FALSE(m->forward(bad, false, &logits).ok());
  EXPECT_FALSE(m->forward(ids, false, &logits).ok());  // 65 + 140 tokens: more than the context of 200
  EXPECT_EQ(pages(), 2u);
  m->truncate(10);
  EXPECT_EQ(pages(), 1u);
  ASSERT_TRUE(m->forward(std::span(ids).first(120), false, &logits).ok());
  EXPECT_EQ(m->length(), 130);
  EXPECT_EQ(pages(), 3u);
  m->reset();
  EXPECT_EQ(pages(), 0u);

  // 200 tokens take 4 pages of 64 rows, and the block table 4 ints.
  ModelOptions options;
  options.max_context = 200;
  EXPECT_EQ(model_memory(w.config, options).kv_cache,
            4 * kKvPageSize * qwen3_footprint(w.config).kv_bytes_per_token + 4 * sizeof(std::int32_t));
}

}  // namespace
}  // namespace fp8lm
