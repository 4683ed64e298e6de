// The Qwen3 model family's dimensions (from the official config.json files) and the FP8 GEMM
// shapes they produce, for tests and benchmarks.
#pragma once

#include <array>
#include <string>
#include <vector>

namespace fp8lm {

struct Qwen3Dims {
  const char* name;
  int layers;
  int hidden;
  int q_heads;
  int kv_heads;
  int intermediate;  // MoE: per expert
  int experts;       // 0 for dense models
  int top_k;
};

inline constexpr int kQwen3HeadDim = 128;

inline constexpr std::array<Qwen3Dims, 8> kQwen3Models = {{
    {"qwen3-0.6b", 28, 1024, 16, 8, 3072, 0, 0},
    {"qwen3-1.7b", 28, 2048, 16, 8, 6144, 0, 0},
    {"qwen3-4b", 36, 2560, 32, 8, 9728, 0, 0},
    {"qwen3-8b", 36, 4096, 32, 8, 12288, 0, 0},
    {"qwen3-14b", 40, 5120, 40, 8, 17408, 0, 0},
    {"qwen3-32b", 64, 5120, 64, 8, 25600, 0, 0},
    {"qwen3-30b-a3b", 48, 2048, 32, 4, 768, 128, 8},
    {"qwen3-235b-a22b", 94, 4096, 64, 4, 1536, 128, 8},
}};

// One linear layer's GEMM: weights [n, k].
struct GemmShape {
  std::string model;
  std::string layer;  // qkv, o, gate_up, down (MoE: expert_gate_up, expert_down)
  int n;
  int k;
};

// The four FP8 linears of one layer (q/k/v and gate/up fused, as fp8lm loads them).
inline std::vector<GemmShape> qwen3_gemm_shapes(const Qwen3Dims& d) {
  const int qkv = (d.q_heads + 2 * d.kv_heads) * kQwen3HeadDim;
  const int q_width = d.q_heads * kQwen3HeadDim;
  const std::string prefix = d.experts ? "expert_" : "";
  return {{d.name, "qkv", qkv, d.hidden},
          {d.name, "o", d.hidden, q_width},
          {d.name, prefix + "gate_up", 2 * d.intermediate, d.hidden},
          {d.name, prefix + "down", d.hidden, d.intermediate}};
}

// The shapes of the seven models of the seed benchmark (0.6B..32B dense and 30B-A3B).
inline std::vector<GemmShape> qwen3_benchmark_gemm_shapes() {
  std::vector<GemmShape> all;
  for (const Qwen3Dims& d : kQwen3Models) {
    if (std::string(d.name) == "qwen3-235b-a22b") continue;
    for (GemmShape& s : qwen3_gemm_shapes(d)) all.push_back(std::move(s));
  }
  return all;
}

}  // namespace fp8lm
