#include "bpe.h"

#include <algorithm>
#include <mutex>

namespace fp8lm {

void MergeTable::Reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;  // load factor <= 0.5
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  size_ = 0;
}

bool MergeTable::Insert(TokenId left, TokenId right, Entry entry) {
  if (slots_.empty() || (size_ + 1) * 2 > slots_.size()) {
    std::vector<Slot> old = std::move(slots_);
    Reserve(std::max<size_t>(size_ + 1, old.size()));
    for (const Slot& s : old) {
      if (s.key != kEmpty) Insert(static_cast<TokenId>(s.key >> 32), static_cast<TokenId>(s.key & 0xFFFFFFFFu), s.entry);
    }
  }
  const uint64_t key = Key(left, right);
  for (size_t i = Hash(key) & mask_;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.key == key) return false;
    if (s.key == kEmpty) {
      s.key = key;
      s.entry = entry;
      ++size_;
      return true;
    }
  }
}

BpeModel::BpeModel(std::array<TokenId, 256> byte_ids, MergeTable merges, bool ignore_merges,
                   std::unordered_map<std::string, TokenId> whole_ids)
    : byte_ids_(byte_ids), merges_(std::move(merges)), ignore_merges_(ignore_merges) {
  for (auto& [k, v] : whole_ids) whole_ids_.emplace(k, v);
}

void BpeModel::Encode(std::string_view piece, std::vector<TokenId>* out) const {
  if (piece.size() == 1) {
    out->push_back(byte_ids_[static_cast<uint8_t>(piece[0])]);
    return;
  }
  if (ignore_merges_) {
    if (auto it = whole_ids_.find(piece); it != whole_ids_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  const bool cacheable = piece.size() < kMaxCachedPieceBytes;
  if (cacheable) {
    std::shared_lock lock(cache_mutex_);
    if (auto it = cache_.find(piece); it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = out->size();
  Merge(piece, out);
  if (cacheable) {
    std::unique_lock lock(cache_mutex_);
    if (cache_.size() < kMaxCacheEntries) {
      cache_.emplace(std::string(piece), std::vector<TokenId>(out->begin() + start, out->end()));
    }
  }
}

void BpeModel::Merge(std::string_view piece, std::vector<TokenId>* out) const {
  struct Symbol {
    TokenId id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  struct Candidate {
    uint32_t rank;
    int32_t pos;
    TokenId merged;
    // std::push_heap builds a max-heap: "less" means worse (higher rank, then further right).
    bool operator<(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Candidate> heap;
  const auto n = static_cast<int32_t>(piece.size());
  symbols.resize(n);
  for (int32_t i = 0; i < n; ++i) {
    symbols[i] = {byte_ids_[static_cast<uint8_t>(piece[i])], i - 1, i + 1 < n ? i + 1 : -1, true};
  }
  heap.clear();
  auto push = [](Candidate c) {
    heap.push_back(c);
    std::push_heap(heap.begin(), heap.end());
  };
  for (int32_t i = 0; i + 1 < n; ++i) {
    if (const MergeTable::Entry* e = merges_.Find(symbols[i].id, symbols[i + 1].id)) {
      push({e->rank, i, e->merged});
    }
  }
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    const MergeTable::Entry* e = merges_.Find(left.id, right.id);
    if (e == nullptr || e->merged != top.merged) continue;  // stale: a neighbour changed
    left.id = top.merged;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const MergeTable::Entry* pe = merges_.Find(symbols[left.prev].id, left.id)) {
        push({pe->rank, left.prev, pe->merged});
      }
    }
    if (left.next >= 0) {
      if (const MergeTable::Entry* ne = merges_.Find(left.id, symbols[left.next].id)) {
        push({ne->rank, top.pos, ne->merged});
      }
    }
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) out->push_back(symbols[i].id);
}

}  // namespace fp8lm
