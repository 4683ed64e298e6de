// Naming of the files under bench/results/: <benchmark>-<UTC date>-<card>-<...>.{json,md}.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>

#include "fp8lm/status.h"

namespace fp8lm::bench {

// Today's date in UTC, YYYY-MM-DD.
inline std::string utc_date() {
  const std::time_t t = std::time(nullptr);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::gmtime(&t));
  return buf;
}

// Lower-case letters and digits, every other run of characters one '-' ("NVIDIA H200" -> "nvidia-h200").
inline std::string file_safe(std::string s) {
  for (char& c : s) c = std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '-';
  s.erase(std::unique(s.begin(), s.end(), [](char a, char b) { return a == '-' && b == '-'; }), s.end());
  return s;
}

// A markdown table cell: `v` in `format`, or "–" where there is no number (NaN: failed or not measured).
inline std::string markdown_cell(double v, const char* format) {
  return std::isfinite(v) ? fmt::format(fmt::runtime(format), v) : std::string("–");
}

// Writes `stem`.json (doc, one-space indent) and `stem`.md, creating the folder `stem` lies in first.
inline Status write_result_files(const std::string& stem, const nlohmann::json& doc, const std::string& markdown) {
  const std::string dir = std::filesystem::path(stem).parent_path().string();
  std::error_code ec;
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  if (ec) return Status::Error("cannot create " + dir + ": " + ec.message());
  std::ofstream json_file(stem + ".json");
  json_file << doc.dump(1) << "\n";
  std::ofstream md(stem + ".md");
  md << markdown;
  if (!json_file || !md) return Status::Error("could not write " + stem + ".{json,md}");
  return Status::Ok();
}

}  // namespace fp8lm::bench
