// Byte-pair encoding of one pre-tokenized piece (raw bytes) into ids.
//
// The algorithm is the one of Hugging Face tokenizers (models/bpe/word.rs, merge_all): start with
// one symbol per byte, keep every adjacent pair that has a merge in a min-heap ordered by (merge
// rank, position), pop the best, skip it if stale, merge, push the two new neighbour pairs.
// Results of pieces shorter than kMaxCachedPieceBytes are cached (thread-safe, bounded).
#pragma once

#include <array>
#include <cstdint>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fp8lm/tokenizer.h"

namespace fp8lm {

// Open-addressing map from an ordered pair of ids to (rank, merged id).
class MergeTable {
 public:
  struct Entry {
    uint32_t rank;
    TokenId merged;
  };
  void Reserve(size_t n);
  // Returns false if the pair is already present (the first rank wins, as in Hugging Face).
  bool Insert(TokenId left, TokenId right, Entry entry);
  const Entry* Find(TokenId left, TokenId right) const {
    const uint64_t key = Key(left, right);
    for (size_t i = Hash(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.entry;
      if (s.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  struct Slot {
    uint64_t key = kEmpty;
    Entry entry{};
  };
  static uint64_t Key(TokenId l, TokenId r) {
    return (uint64_t{static_cast<uint32_t>(l)} << 32) | static_cast<uint32_t>(r);
  }
  static size_t Hash(uint64_t key) { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 20); }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

class BpeModel {
 public:
  static constexpr size_t kMaxCachedPieceBytes = 256;
  static constexpr size_t kMaxCacheEntries = 200000;

  // byte_ids[b]: id of the single-byte token b. whole_ids: used only with ignore_merges (a piece
  // that is itself a vocabulary entry becomes that entry, as in Llama-3 style files).
  BpeModel(std::array<TokenId, 256> byte_ids, MergeTable merges, bool ignore_merges,
           std::unordered_map<std::string, TokenId> whole_ids);

  // Appends the ids of `piece` (raw bytes, non-empty) to `out`.
  void Encode(std::string_view piece, std::vector<TokenId>* out) const;

 private:
  void Merge(std::string_view piece, std::vector<TokenId>* out) const;

  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::array<TokenId, 256> byte_ids_;
  MergeTable merges_;
  bool ignore_merges_;
  std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>> whole_ids_;

  mutable std::shared_mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<TokenId>, StringHash, std::equal_to<>> cache_;
};

}  // namespace fp8lm
