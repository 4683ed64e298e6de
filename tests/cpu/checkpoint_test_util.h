// Helpers for the checkpoint tests: a temporary folder, a small Qwen3 config, raw file writing.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "engine/checkpoint/qwen3_presets.h"

namespace fp8lm::testing {

// A fresh folder under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("fp8lm_" + std::string(info ? info->name() : "test") + "_" + std::to_string(::getpid()) + "_" +
             std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A Qwen3 small enough to build many broken checkpoints quickly: 2 layers, hidden 128, 2 q heads /
// 1 kv head, intermediate 256, vocab 1000 (the FP8 layout needs 128-multiples only in fused rows).
inline Qwen3Config small_config() {
  Qwen3Config c;
  EXPECT_TRUE(qwen3_preset(kTinyPreset, &c).ok());
  c.vocab_size = 1000;
  c.hidden_size = 128;
  c.intermediate_size = 256;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.tie_word_embeddings = false;
  return c;
}

// small_config as a qwen3_moe model: 4 experts of width 128, top-2; layer 1 keeps a dense MLP
// (mlp_only_layers), so both kinds of layer are exercised.
inline Qwen3Config small_moe_config() {
  Qwen3Config c = small_config();
  c.model_type = "qwen3_moe";
  c.num_experts = 4;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = 128;
  c.mlp_only_layers = {1};
  return c;
}

// Expects an error whose message contains every one of `parts`.
#define EXPECT_ERROR_HAS(status, ...)                                              \
  do {                                                                             \
    const ::fp8lm::Status st_ = (status);                                          \
    ASSERT_FALSE(st_.ok()) << "expected an error";                                 \
    for (const std::string& part_ : std::initializer_list<std::string>{__VA_ARGS__}) \
      EXPECT_NE(st_.message().find(part_), std::string::npos)                      \
          << "message: " << st_.message() << "\nmissing: " << part_;               \
  } while (0)

}  // namespace fp8lm::testing
