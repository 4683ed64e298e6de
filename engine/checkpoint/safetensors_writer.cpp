#include "engine/checkpoint/safetensors_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

namespace fp8lm {

namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

Status write_all(std::FILE* f, const std::string& path, const void* p, std::size_t n) {
  if (n > 0 && std::fwrite(p, 1, n, f) != n)
    return Status::Error(path + ": write failed (" + std::strerror(errno) + ")");
  return Status::Ok();
}

std::string shard_name(std::size_t i, std::size_t count) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, count);
  return buf;
}

}  // namespace

std::size_t TensorToWrite::nbytes() const {
  std::size_t n = dtype_size(dtype);
  for (std::int64_t d : shape) n *= static_cast<std::size_t>(d);
  return n;
}

Status write_safetensors(const std::string& path, std::span<const TensorToWrite> tensors,
                         const std::map<std::string, std::string>& metadata, const WriteProgress& progress,
                         std::uint64_t bytes_before, std::uint64_t bytes_total) {
  // nlohmann's ordered_json keeps the tensors in file order, which readers of the header expect.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    const std::size_t n = t.nbytes();
    if (!t.fill && t.bytes.size() != n)
      return Status::Error(path + ": tensor " + t.name + " has " + std::to_string(t.bytes.size()) + " bytes but " +
                           dtype_name(t.dtype) + " " + shape_to_string(t.shape) + " needs " + std::to_string(n));
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data section 8-byte aligned

  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "wb"));
  if (!f) return Status::Error(path + ": cannot create (" + std::strerror(errno) + ")");
  std::byte len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<std::byte>((text.size() >> (8 * i)) & 0xFF);
  FP8LM_RETURN_IF_ERROR(write_all(f.get(), path, len, 8));
  FP8LM_RETURN_IF_ERROR(write_all(f.get(), path, text.data(), text.size()));
  std::vector<std::byte> buffer;
  std::uint64_t done = bytes_before;
  for (const TensorToWrite& t : tensors) {
    const std::size_t n = t.nbytes();
    if (t.fill) {
      buffer.resize(n);
      t.fill(buffer);
      FP8LM_RETURN_IF_ERROR(write_all(f.get(), path, buffer.data(), n));
    } else {
      FP8LM_RETURN_IF_ERROR(write_all(f.get(), path, t.bytes.data(), n));
    }
    done += n;
    if (progress) progress(done, bytes_total ? bytes_total : done);
  }
  if (std::fclose(f.release()) != 0) return Status::Error(path + ": close failed (" + std::strerror(errno) + ")");
  return Status::Ok();
}

Status write_safetensors_checkpoint(const std::string& dir, std::span<const TensorToWrite> tensors,
                                    std::uint64_t max_shard_bytes, const WriteProgress& progress) {
  namespace fs = std::filesystem;
  // Greedy split in order: [first, end) index ranges.
  std::vector<std::pair<std::size_t, std::size_t>> shards;
  std::uint64_t in_shard = 0, total = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const std::uint64_t n = tensors[i].nbytes();
    if (shards.empty() || (in_shard > 0 && in_shard + n > max_shard_bytes)) {
      shards.push_back({i, i});
      in_shard = 0;
    }
    shards.back().second = i + 1;
    in_shard += n;
    total += n;
  }
  if (shards.size() <= 1)
    return write_safetensors((fs::path(dir) / kSingleFileName).string(), tensors, {{"format", "pt"}}, progress, 0,
                             total);

  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  std::uint64_t done = 0;
  for (std::size_t s = 0; s < shards.size(); ++s) {
    const std::string name = shard_name(s, shards.size());
    const auto part = tensors.subspan(shards[s].first, shards[s].second - shards[s].first);
    FP8LM_RETURN_IF_ERROR(
        write_safetensors((fs::path(dir) / name).string(), part, {{"format", "pt"}}, progress, done, total));
    for (const TensorToWrite& t : part) {
      weight_map[t.name] = name;
      done += t.nbytes();
    }
  }
  const nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  const std::string index_path = (fs::path(dir) / kIndexFileName).string();
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(index_path.c_str(), "wb"));
  if (!f) return Status::Error(index_path + ": cannot create (" + std::strerror(errno) + ")");
  const std::string text = index.dump(2) + "\n";
  FP8LM_RETURN_IF_ERROR(write_all(f.get(), index_path, text.data(), text.size()));
  return Status::Ok();
}

}  // namespace fp8lm
