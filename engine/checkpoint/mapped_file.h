// A read-only memory map of a whole file (RAII). Checkpoint shards are mapped, not read, so that
// opening a folder costs nothing until tensors are copied out.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "fp8lm/status.h"

namespace fp8lm {

class MappedFile {
 public:
  static Status open(const std::string& path, std::unique_ptr<MappedFile>* out);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  const std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  MappedFile(std::string path, const std::byte* data, std::size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const std::byte* data_;
  std::size_t size_;
};

}  // namespace fp8lm
