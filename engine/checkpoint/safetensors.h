// Reading safetensors files (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
// {string: string}}, then the data section. Files are memory-mapped; every header field is
// validated (sizes with overflow checks, offsets inside the file, no overlaps) before a tensor is
// handed out, and every error names the file and the tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/checkpoint/mapped_file.h"
#include "fp8lm/status.h"

namespace fp8lm {

enum class Dtype { BOOL, U8, I8, F8_E4M3, F8_E5M2, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64 };

// The safetensors dtype name ("BF16", "F8_E4M3", ...) and back; nullopt for unknown names.
std::optional<Dtype> dtype_from_name(std::string_view name);
const char* dtype_name(Dtype dtype);
std::size_t dtype_size(Dtype dtype);

// One tensor inside a mapped file. `data` may be unaligned for its dtype: read it with memcpy.
struct TensorView {
  std::string name;
  Dtype dtype = Dtype::U8;
  std::vector<std::int64_t> shape;
  const std::byte* data = nullptr;
  std::size_t nbytes = 0;
  const std::string* file = nullptr;  // the shard it lives in, for error messages

  std::int64_t numel() const;
  std::string shape_string() const;  // "[151936, 1024]"
};

// One .safetensors file, validated at open.
class SafetensorsFile {
 public:
  static Status open(const std::string& path, std::unique_ptr<SafetensorsFile>* out);

  const std::string& path() const { return map_->path(); }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::unique_ptr<MappedFile> map_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

inline constexpr const char* kSingleFileName = "model.safetensors";
inline constexpr const char* kIndexFileName = "model.safetensors.index.json";

// A Hugging Face checkpoint folder: model.safetensors.index.json (its weight_map names the shard of
// every tensor) or, without an index, a single model.safetensors.
class SafetensorsCheckpoint {
 public:
  static Status open(const std::string& dir, SafetensorsCheckpoint* out);

  const TensorView* find(const std::string& name) const;
  const std::map<std::string, const TensorView*>& tensors() const { return tensors_; }
  std::size_t total_bytes() const;
  std::size_t num_files() const { return files_.size(); }

 private:
  Status add_file(const std::string& path);
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> tensors_;
};

// Shape "[a, b, c]" for messages.
std::string shape_to_string(const std::vector<std::int64_t>& shape);

}  // namespace fp8lm
