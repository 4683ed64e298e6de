#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/checkpoint/safetensors.h"

namespace fp8lm {

namespace {

struct DtypeInfo {
  Dtype dtype;
  const char* name;
  std::size_t size;
};
constexpr std::array<DtypeInfo, 15> kDtypes = {{
    {Dtype::BOOL, "BOOL", 1}, {Dtype::U8, "U8", 1},   {Dtype::I8, "I8", 1},     {Dtype::F8_E4M3, "F8_E4M3", 1},
    {Dtype::F8_E5M2, "F8_E5M2", 1}, {Dtype::I16, "I16", 2}, {Dtype::U16, "U16", 2}, {Dtype::F16, "F16", 2},
    {Dtype::BF16, "BF16", 2}, {Dtype::I32, "I32", 4}, {Dtype::U32, "U32", 4}, {Dtype::F32, "F32", 4},
    {Dtype::I64, "I64", 8},   {Dtype::U64, "U64", 8}, {Dtype::F64, "F64", 8},
}};

// The reference implementation refuses headers above 100 MB; a real one is a few hundred KB.
constexpr std::uint64_t kMaxHeaderBytes = 100ull << 20;

std::uint64_t read_le64(const std::byte* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}

bool is_uint(const nlohmann::json& j) { return j.is_number_unsigned() || (j.is_number_integer() && j.get<std::int64_t>() >= 0); }

// Parses one header entry into `t` (data pointer not yet set); `where` prefixes messages.
Status parse_entry(const std::string& where, const nlohmann::json& e, TensorView* t, std::uint64_t* begin,
                   std::uint64_t* end) {
  if (!e.is_object()) return Status::Error(where + ": header entry is not an object");
  const auto dt = e.find("dtype");
  if (dt == e.end() || !dt->is_string()) return Status::Error(where + ": missing or non-string \"dtype\"");
  const std::optional<Dtype> dtype = dtype_from_name(dt->get<std::string>());
  if (!dtype) return Status::Error(where + ": unknown dtype \"" + dt->get<std::string>() + "\"");
  t->dtype = *dtype;
  const auto sh = e.find("shape");
  if (sh == e.end() || !sh->is_array()) return Status::Error(where + ": missing or non-array \"shape\"");
  std::uint64_t numel = 1;
  bool overflow = false;
  for (const auto& d : *sh) {
    if (!is_uint(d)) return Status::Error(where + ": shape " + sh->dump() + " has a non-integer or negative dimension");
    const std::uint64_t v = d.get<std::uint64_t>();
    if (v > static_cast<std::uint64_t>(INT64_MAX)) overflow = true;
    t->shape.push_back(static_cast<std::int64_t>(v));
    if (v != 0 && numel > UINT64_MAX / v) overflow = true;
    numel *= v;
  }
  const std::size_t elem = dtype_size(*dtype);
  if (overflow || numel > UINT64_MAX / elem)
    return Status::Error(where + ": shape " + sh->dump() + " overflows a 64-bit byte count");
  const auto off = e.find("data_offsets");
  if (off == e.end() || !off->is_array() || off->size() != 2 || !is_uint((*off)[0]) || !is_uint((*off)[1]))
    return Status::Error(where + ": \"data_offsets\" must be two non-negative integers");
  *begin = (*off)[0].get<std::uint64_t>();
  *end = (*off)[1].get<std::uint64_t>();
  if (*end < *begin)
    return Status::Error(where + ": data_offsets [" + std::to_string(*begin) + ", " + std::to_string(*end) +
                         "] end before they begin");
  if (*end - *begin != numel * elem)
    return Status::Error(where + ": data_offsets span " + std::to_string(*end - *begin) + " bytes but dtype " +
                         dtype_name(*dtype) + " shape " + sh->dump() + " needs " + std::to_string(numel * elem));
  t->nbytes = static_cast<std::size_t>(numel * elem);
  return Status::Ok();
}

}  // namespace

std::optional<Dtype> dtype_from_name(std::string_view name) {
  for (const DtypeInfo& d : kDtypes)
    if (name == d.name) return d.dtype;
  return std::nullopt;
}

const char* dtype_name(Dtype dtype) {
  for (const DtypeInfo& d : kDtypes)
    if (d.dtype == dtype) return d.name;
  return "?";
}

std::size_t dtype_size(Dtype dtype) {
  for (const DtypeInfo& d : kDtypes)
    if (d.dtype == dtype) return d.size;
  return 1;
}

std::int64_t TensorView::numel() const {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  return n;
}

std::string shape_to_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string TensorView::shape_string() const { return shape_to_string(shape); }

Status SafetensorsFile::open(const std::string& path, std::unique_ptr<SafetensorsFile>* out) {
  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  FP8LM_RETURN_IF_ERROR(MappedFile::open(path, &file->map_));
  const std::size_t size = file->map_->size();
  if (size < 8)
    return Status::Error(path + ": truncated or not a safetensors file (" + std::to_string(size) +
                         " bytes, the header length alone takes 8)");
  const std::uint64_t header_len = read_le64(file->map_->data());
  if (header_len > size - 8)
    return Status::Error(path + ": header length " + std::to_string(header_len) + " exceeds the file size " +
                         std::to_string(size) + " (truncated, or not a safetensors file)");
  if (header_len > kMaxHeaderBytes)
    return Status::Error(path + ": header length " + std::to_string(header_len) + " exceeds the 100 MB limit");
  const auto* header_begin = reinterpret_cast<const char*>(file->map_->data() + 8);
  nlohmann::json header = nlohmann::json::parse(header_begin, header_begin + header_len, nullptr, false);
  if (header.is_discarded() || !header.is_object())
    return Status::Error(path + ": the header is not a JSON object (garbage or not a safetensors file)");

  const std::byte* data = file->map_->data() + 8 + header_len;
  const std::uint64_t data_size = size - 8 - header_len;
  struct Range {
    std::uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return Status::Error(path + ": __metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) return Status::Error(path + ": __metadata__[\"" + m.key() + "\"] is not a string");
        file->metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    TensorView t;
    t.name = it.key();
    std::uint64_t begin = 0, end = 0;
    FP8LM_RETURN_IF_ERROR(parse_entry(path + ": tensor " + t.name, *it, &t, &begin, &end));
    if (end > data_size)
      return Status::Error(path + ": tensor " + t.name + " ends at data byte " + std::to_string(end) +
                           " but the data section has only " + std::to_string(data_size) +
                           " bytes (file truncated or offsets out of range)");
    t.data = data + begin;
    t.file = &file->map_->path();
    auto [pos, inserted] = file->tensors_.emplace(t.name, std::move(t));
    ranges.push_back({begin, end, &pos->first});
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (std::size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].begin < ranges[i - 1].end)
      return Status::Error(path + ": tensors " + *ranges[i - 1].name + " and " + *ranges[i].name +
                           " overlap (data_offsets " + std::to_string(ranges[i - 1].begin) + ".." +
                           std::to_string(ranges[i - 1].end) + " and " + std::to_string(ranges[i].begin) + ".." +
                           std::to_string(ranges[i].end) + ")");
  *out = std::move(file);
  return Status::Ok();
}

Status SafetensorsCheckpoint::add_file(const std::string& path) {
  std::unique_ptr<SafetensorsFile> file;
  FP8LM_RETURN_IF_ERROR(SafetensorsFile::open(path, &file));
  for (const auto& [name, view] : file->tensors()) {
    auto [it, inserted] = tensors_.emplace(name, &view);
    if (!inserted)
      return Status::Error(path + ": tensor " + name + " also appears in " + *it->second->file);
  }
  files_.push_back(std::move(file));
  return Status::Ok();
}

Status SafetensorsCheckpoint::open(const std::string& dir, SafetensorsCheckpoint* out) {
  namespace fs = std::filesystem;
  SafetensorsCheckpoint ckpt;
  const fs::path index_path = fs::path(dir) / kIndexFileName;
  std::error_code ec;
  if (!fs::exists(index_path, ec)) {
    const fs::path single = fs::path(dir) / kSingleFileName;
    if (!fs::exists(single, ec))
      return Status::Error(dir + ": no " + kIndexFileName + " and no " + kSingleFileName);
    FP8LM_RETURN_IF_ERROR(ckpt.add_file(single.string()));
    *out = std::move(ckpt);
    return Status::Ok();
  }
  std::ifstream in(index_path);
  nlohmann::json index = nlohmann::json::parse(in, nullptr, false);
  if (index.is_discarded() || !index.is_object())
    return Status::Error(index_path.string() + ": not a JSON object");
  const auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object())
    return Status::Error(index_path.string() + ": missing \"weight_map\" object");
  std::set<std::string> shards;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string())
      return Status::Error(index_path.string() + ": weight_map[\"" + it.key() + "\"] is not a file name");
    const std::string shard = it->get<std::string>();
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "..")
      return Status::Error(index_path.string() + ": weight_map[\"" + it.key() + "\"] = \"" + shard +
                           "\" is not a file name in the folder");
    shards.insert(shard);
  }
  for (const std::string& shard : shards) {
    const fs::path p = fs::path(dir) / shard;
    if (!fs::exists(p, ec))
      return Status::Error(p.string() + ": missing shard (listed in " + index_path.string() + ")");
    FP8LM_RETURN_IF_ERROR(ckpt.add_file(p.string()));
  }
  // The index and the shards must agree, both ways.
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    const TensorView* t = ckpt.find(it.key());
    const std::string expected = (fs::path(dir) / it->get<std::string>()).string();
    if (t == nullptr)
      return Status::Error(expected + ": tensor " + it.key() + " listed in " + index_path.string() +
                           " is not in this shard");
    if (*t->file != expected)
      return Status::Error(*t->file + ": tensor " + it.key() + " is here but the index says " + expected);
  }
  for (const auto& [name, view] : ckpt.tensors_)
    if (!wm->contains(name))
      return Status::Error(*view->file + ": tensor " + name + " is not listed in " + index_path.string());
  *out = std::move(ckpt);
  return Status::Ok();
}

const TensorView* SafetensorsCheckpoint::find(const std::string& name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second;
}

std::size_t SafetensorsCheckpoint::total_bytes() const {
  std::size_t n = 0;
  for (const auto& [name, view] : tensors_) n += view->nbytes;
  return n;
}

}  // namespace fp8lm
