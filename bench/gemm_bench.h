// `fp8lm bench gemm`: our FP8 blockwise GEMM against cuBLASLt blockwise FP8 and cuBLAS(Lt) bf16 on
// every Qwen3 GEMM shape, with the card's floor measured in the same run. Writes JSON + markdown.
// With `grouped`: the MoE expert GEMMs (decode: 1 token, prefill: 4096 tokens, top-k routing), one
// grouped launch against per-expert loops of cuBLASLt blockwise and of our dense kernel.
#pragma once

#include <string>
#include <vector>

#include "fp8lm/status.h"

namespace fp8lm::bench {

struct GemmBenchOptions {
  std::string out_dir = "bench/results";
  std::vector<std::string> models;  // names as in kQwen3Models (e.g. qwen3-8b); empty: the seed's seven
  std::vector<int> ms = {1, 4, 16, 64, 256, 1024, 4096, 16384};
  int replays = 7;
  bool all_configs = false;  // also time every compiled configuration of ours (for tuning)
  std::string tag;           // appended to the result file names
  bool grouped = false;      // the MoE expert GEMMs: gemm_fp8_grouped vs per-expert loops (gemm-grouped-* files)
};

Status run_gemm_bench(const GemmBenchOptions& options);

}  // namespace fp8lm::bench
