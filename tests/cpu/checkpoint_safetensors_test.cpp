// The safetensors reader and writer: round trips, sharding, and every malformed file we refuse.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "checkpoint_test_util.h"
#include "engine/checkpoint/safetensors.h"
#include "engine/checkpoint/safetensors_writer.h"

namespace fp8lm {
namespace {

using testing::TempDir;
using testing::write_text;

std::vector<std::byte> iota_bytes(std::size_t n, int start = 0) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((start + i) & 0xFF);
  return v;
}

// A file with a hand-written header and `data_bytes` bytes of data.
void write_raw(const std::string& path, const std::string& header, std::size_t data_bytes,
               std::uint64_t header_len_field) {
  std::ofstream f(path, std::ios::binary);
  for (int i = 0; i < 8; ++i) f.put(static_cast<char>((header_len_field >> (8 * i)) & 0xFF));
  f << header << std::string(data_bytes, '\x01');
}
void write_raw(const std::string& path, const std::string& header, std::size_t data_bytes) {
  write_raw(path, header, data_bytes, header.size());
}

// "t<i>" (built with += : GCC 12 warns falsely about "literal" + std::string temporaries).
std::string tensor_name(int i) {
  std::string s = "t";
  s += std::to_string(i);
  return s;
}

Status open_raw(const TempDir& dir, const std::string& header, std::size_t data_bytes) {
  write_raw(dir.file("x.safetensors"), header, data_bytes);
  std::unique_ptr<SafetensorsFile> f;
  return SafetensorsFile::open(dir.file("x.safetensors"), &f);
}

TEST(Safetensors, DtypeNames) {
  for (const char* name : {"F8_E4M3", "BF16", "F16", "F32", "I64", "BOOL"})
    EXPECT_STREQ(dtype_name(*dtype_from_name(name)), name);
  EXPECT_FALSE(dtype_from_name("Q4_K").has_value());
  EXPECT_EQ(dtype_size(Dtype::BF16), 2u);
  EXPECT_EQ(dtype_size(Dtype::F8_E4M3), 1u);
}

TEST(Safetensors, WriteReadRoundTrip) {
  TempDir dir;
  const auto a = iota_bytes(2 * 3 * 4), b = iota_bytes(5 * 2, 7), c = iota_bytes(3, 100);
  const std::vector<TensorToWrite> tensors = {
      {"a", Dtype::F32, {2, 3}, a, nullptr},
      {"b", Dtype::BF16, {5}, b, nullptr},
      {"c", Dtype::F8_E4M3, {3}, {}, [&](std::span<std::byte> dst) { std::memcpy(dst.data(), c.data(), 3); }},
  };
  ASSERT_TRUE(write_safetensors(dir.file("m.safetensors"), tensors, {{"format", "pt"}}).ok());
  std::unique_ptr<SafetensorsFile> f;
  const Status st = SafetensorsFile::open(dir.file("m.safetensors"), &f);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(f->metadata().at("format"), "pt");
  ASSERT_EQ(f->tensors().size(), 3u);
  const TensorView& ta = f->tensors().at("a");
  EXPECT_EQ(ta.dtype, Dtype::F32);
  EXPECT_EQ(ta.shape, (std::vector<std::int64_t>{2, 3}));
  ASSERT_EQ(ta.nbytes, a.size());
  EXPECT_EQ(std::memcmp(ta.data, a.data(), a.size()), 0);
  EXPECT_EQ(std::memcmp(f->tensors().at("b").data, b.data(), b.size()), 0);
  EXPECT_EQ(std::memcmp(f->tensors().at("c").data, c.data(), c.size()), 0);
  // The data section starts 8-byte aligned.
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(ta.data) % 8, 0u);
}

TEST(Safetensors, ShardsAndIndex) {
  TempDir dir;
  std::vector<std::vector<std::byte>> data;
  std::vector<TensorToWrite> tensors;
  for (int i = 0; i < 5; ++i) data.push_back(iota_bytes(400, i));
  for (int i = 0; i < 5; ++i) tensors.push_back({tensor_name(i), Dtype::U8, {400}, data[i], nullptr});
  // 1000-byte shards hold two 400-byte tensors each: 3 shards.
  ASSERT_TRUE(write_safetensors_checkpoint(dir.str(), tensors, 1000).ok());
  for (const char* f : {"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                        "model-00003-of-00003.safetensors", "model.safetensors.index.json"})
    EXPECT_TRUE(std::filesystem::exists(dir.file(f))) << f;
  EXPECT_FALSE(std::filesystem::exists(dir.file("model.safetensors")));
  SafetensorsCheckpoint ckpt;
  const Status st = SafetensorsCheckpoint::open(dir.str(), &ckpt);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(ckpt.num_files(), 3u);
  EXPECT_EQ(ckpt.total_bytes(), 2000u);
  for (int i = 0; i < 5; ++i) {
    const TensorView* t = ckpt.find(tensor_name(i));
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(std::memcmp(t->data, data[i].data(), 400), 0);
  }
}

TEST(Safetensors, OneShardIsModelSafetensors) {
  TempDir dir;
  const auto a = iota_bytes(16);
  const std::vector<TensorToWrite> tensors = {{"a", Dtype::U8, {16}, a, nullptr}};
  ASSERT_TRUE(write_safetensors_checkpoint(dir.str(), tensors).ok());
  EXPECT_TRUE(std::filesystem::exists(dir.file("model.safetensors")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("model.safetensors.index.json")));
  SafetensorsCheckpoint ckpt;
  ASSERT_TRUE(SafetensorsCheckpoint::open(dir.str(), &ckpt).ok());
  EXPECT_NE(ckpt.find("a"), nullptr);
}

TEST(Safetensors, TruncatedFile) {
  TempDir dir;
  const auto a = iota_bytes(1000);
  const std::vector<TensorToWrite> tensors = {{"weights", Dtype::U8, {1000}, a, nullptr}};
  ASSERT_TRUE(write_safetensors(dir.file("m.safetensors"), tensors).ok());
  std::filesystem::resize_file(dir.file("m.safetensors"), std::filesystem::file_size(dir.file("m.safetensors")) - 10);
  std::unique_ptr<SafetensorsFile> f;
  EXPECT_ERROR_HAS(SafetensorsFile::open(dir.file("m.safetensors"), &f), "m.safetensors", "weights", "truncated");
}

TEST(Safetensors, ShorterThanTheLengthField) {
  TempDir dir;
  write_text(dir.file("x.safetensors"), "abc");
  std::unique_ptr<SafetensorsFile> f;
  EXPECT_ERROR_HAS(SafetensorsFile::open(dir.file("x.safetensors"), &f), "x.safetensors", "truncated");
}

TEST(Safetensors, HeaderLengthBeyondFile) {
  TempDir dir;
  write_raw(dir.file("x.safetensors"), "{}", 0, 1ull << 40);
  std::unique_ptr<SafetensorsFile> f;
  EXPECT_ERROR_HAS(SafetensorsFile::open(dir.file("x.safetensors"), &f), "x.safetensors", "exceeds the file size");
}

TEST(Safetensors, HeaderGarbage) {
  TempDir dir;
  EXPECT_ERROR_HAS(open_raw(dir, "{\"a\": [1, 2", 0), "x.safetensors", "not a JSON object");
  EXPECT_ERROR_HAS(open_raw(dir, "[1, 2]", 0), "not a JSON object");
  EXPECT_ERROR_HAS(open_raw(dir, R"({"a": 3})", 0), "tensor a", "not an object");
  EXPECT_ERROR_HAS(open_raw(dir, R"({"__metadata__": {"k": 1}})", 0), "__metadata__");
}

TEST(Safetensors, UnknownDtype) {
  TempDir dir;
  EXPECT_ERROR_HAS(open_raw(dir, R"({"w": {"dtype": "Q4_K", "shape": [2], "data_offsets": [0, 2]}})", 2), "tensor w",
                   "unknown dtype \"Q4_K\"");
}

TEST(Safetensors, ShapeAndByteCountDisagree) {
  TempDir dir;
  EXPECT_ERROR_HAS(open_raw(dir, R"({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 6]}})", 6),
                   "tensor w", "span 6 bytes", "needs 12");
  EXPECT_ERROR_HAS(open_raw(dir, R"({"w": {"dtype": "BF16", "shape": [-2], "data_offsets": [0, 4]}})", 4), "tensor w",
                   "negative");
  EXPECT_ERROR_HAS(open_raw(dir, R"({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [4, 0]}})", 4), "tensor w",
                   "end before they begin");
}

TEST(Safetensors, ShapeOverflow) {
  TempDir dir;
  EXPECT_ERROR_HAS(
      open_raw(dir, R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})", 0),
      "tensor w", "overflows");
}

TEST(Safetensors, OffsetsOutOfRange) {
  TempDir dir;
  EXPECT_ERROR_HAS(open_raw(dir, R"({"w": {"dtype": "U8", "shape": [100], "data_offsets": [50, 150]}})", 100),
                   "tensor w", "ends at data byte 150", "only 100 bytes");
}

TEST(Safetensors, OverlappingTensors) {
  TempDir dir;
  EXPECT_ERROR_HAS(open_raw(dir,
                            R"({"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]},
                                "b": {"dtype": "U8", "shape": [8], "data_offsets": [4, 12]}})",
                            12),
                   "tensors a and b overlap");
}

// Sharded folders: a missing shard, a tensor the index misplaces, an empty folder.
class ShardedCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 4; ++i) data_.push_back(iota_bytes(100, i));
    for (int i = 0; i < 4; ++i) tensors_.push_back({tensor_name(i), Dtype::U8, {100}, data_[i], nullptr});
    ASSERT_TRUE(write_safetensors_checkpoint(dir_.str(), tensors_, 200).ok());
  }
  TempDir dir_;
  std::vector<std::vector<std::byte>> data_;
  std::vector<TensorToWrite> tensors_;
};

TEST_F(ShardedCheckpoint, MissingShard) {
  std::filesystem::remove(dir_.file("model-00002-of-00002.safetensors"));
  SafetensorsCheckpoint ckpt;
  EXPECT_ERROR_HAS(SafetensorsCheckpoint::open(dir_.str(), &ckpt), "model-00002-of-00002.safetensors",
                   "missing shard");
}

TEST_F(ShardedCheckpoint, TruncatedShard) {
  const std::string shard = dir_.file("model-00001-of-00002.safetensors");
  std::filesystem::resize_file(shard, std::filesystem::file_size(shard) - 1);
  SafetensorsCheckpoint ckpt;
  EXPECT_ERROR_HAS(SafetensorsCheckpoint::open(dir_.str(), &ckpt), "model-00001-of-00002.safetensors", "t1",
                   "truncated");
}

TEST_F(ShardedCheckpoint, IndexDisagreesWithShards) {
  write_text(dir_.file("model.safetensors.index.json"),
             R"({"weight_map": {"t0": "model-00002-of-00002.safetensors", "t1": "model-00001-of-00002.safetensors",
                 "t2": "model-00002-of-00002.safetensors", "t3": "model-00002-of-00002.safetensors"}})");
  SafetensorsCheckpoint ckpt;
  EXPECT_ERROR_HAS(SafetensorsCheckpoint::open(dir_.str(), &ckpt), "tensor t0");
}

TEST_F(ShardedCheckpoint, IndexGarbage) {
  write_text(dir_.file("model.safetensors.index.json"), "{\"weight_map\": 3}");
  SafetensorsCheckpoint ckpt;
  EXPECT_ERROR_HAS(SafetensorsCheckpoint::open(dir_.str(), &ckpt), "model.safetensors.index.json", "weight_map");
}

TEST(Safetensors, EmptyFolder) {
  TempDir dir;
  SafetensorsCheckpoint ckpt;
  EXPECT_ERROR_HAS(SafetensorsCheckpoint::open(dir.str(), &ckpt), "no model.safetensors.index.json",
                   "no model.safetensors");
}

}  // namespace
}  // namespace fp8lm
