// Writing safetensors files and sharded Hugging Face checkpoints (model-00001-of-0000N.safetensors
// plus model.safetensors.index.json, or one model.safetensors when everything fits in one shard).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "engine/checkpoint/safetensors.h"
#include "fp8lm/status.h"

namespace fp8lm {

// One tensor to write: its bytes either already in memory (`bytes`) or produced on demand by `fill`
// into a buffer of exactly nbytes() (so a BF16 copy of a 32B model never exists all at once).
struct TensorToWrite {
  std::string name;
  Dtype dtype = Dtype::U8;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> bytes;
  std::function<void(std::span<std::byte>)> fill;

  std::size_t nbytes() const;
};

// The official tools cap shards at 5 GB (decimal).
inline constexpr std::uint64_t kMaxShardBytes = 5'000'000'000ull;

// Called after each tensor is written: bytes written so far, bytes in all.
using WriteProgress = std::function<void(std::uint64_t done, std::uint64_t total)>;

// One file, tensors in the given order, the header padded with spaces to a multiple of 8 bytes.
Status write_safetensors(const std::string& path, std::span<const TensorToWrite> tensors,
                         const std::map<std::string, std::string>& metadata = {},
                         const WriteProgress& progress = nullptr, std::uint64_t bytes_before = 0,
                         std::uint64_t bytes_total = 0);

// A checkpoint folder: tensors fill shards in order, a new shard starting when the next tensor
// would push the current one past max_shard_bytes. One shard is written as model.safetensors
// without an index. `dir` must exist.
Status write_safetensors_checkpoint(const std::string& dir, std::span<const TensorToWrite> tensors,
                                    std::uint64_t max_shard_bytes = kMaxShardBytes,
                                    const WriteProgress& progress = nullptr);

}  // namespace fp8lm
