// Every layer of a dense Qwen3 model for one token (a batch-1 decode step), as one op: on a GPU one
// persistent kernel (kernels/decode/decode_layers.cu), so the step pays a handful of grid-wide
// barriers per layer instead of 7-9 kernels' latency chains, and the weight stream runs on
// across them (each CTA streams its weights through a shared-memory ring that runs ahead of its
// computation, across phases and layers).
//
// Per layer l, on the residual row x (bf16 [hidden], read and rewritten in place), the ops of the
// layered path (engine/model/qwen3_model.cpp) in their order:
//   q8 = quantize(rmsnorm(x, input_layernorm)); qkv = gemm(q8, qkv_proj)
//   qk_norm_rope (the token's k and v into the cache at row `pos`); a = attention(...) quantized
//   x = bf16(x + gemm(a, o_proj))
//   q8 = quantize(rmsnorm(x, post_attention_layernorm)); g = gemm(q8, gate_up)
//   x = bf16(x + gemm(silu_mul_quantize(g), down_proj))
// The CPU twin runs exactly those ops (fp8lm::cpu), the layered path's bits. The GPU computes
// each GEMM as the GEMV kernel does for one token (gemv_kblock.cuh: its arithmetic and order of
// sums), the norms, RoPE, quantizations and SiLU with the layered kernels' device code, and
// attention on CUDA cores in its own key split (differs from the flash kernel in summation order
// and exp).
// Deterministic: the same inputs and position give the same bits, eager or in a CUDA graph.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "fp8lm/numerics.h"
#include "fp8lm/status.h"

namespace fp8lm {

// An FP8 linear [n, k] with its [ceil(n/128), ceil(k/128)] fp32 scales (fp8lm/gemm.h's B).
struct Fp8Weight {
  const fp8_e4m3* weight;
  const float* scales;
};

// One layer's weights and KV cache pools (the pools as in fp8lm/layer_ops.h's QkNormRopeArgs).
struct DecodeLayerWeights {
  const bf16* input_layernorm;           // [hidden]
  const bf16* post_attention_layernorm;  // [hidden]
  const bf16* q_norm;                    // [128]
  const bf16* k_norm;                    // [128]
  Fp8Weight qkv;      // [(q_heads + 2 kv_heads) 128, hidden]
  Fp8Weight o;        // [hidden, q_heads 128]
  Fp8Weight gate_up;  // [2 inter, hidden]: the gate rows, then the up rows
  Fp8Weight down;     // [hidden, inter]
  bf16* k_cache;      // this layer's pool: [pool rows, kv_heads 128]
  bf16* v_cache;
};

struct DecodeLayersArgs {
  const DecodeLayerWeights* layers;  // [num_layers], in the op's memory (device memory on the GPU)
  int num_layers;
  bf16* x;                           // [hidden]: the embedded token in, the last layer's residual out
  int hidden;
  int inter;                         // the MLP width
  int q_heads;
  int kv_heads;
  int head_dim;                      // 128 (the only size supported)
  float eps;
  float rope_theta;
  float scale;                       // attention's 1 / sqrt(head_dim)
  const std::int32_t* block_table;   // the sequence's pages (fp8lm/layer_ops.h: paged_row)
  int page_size;
  int cache_capacity;                // rows the table maps; pos < cache_capacity
  int pos;                           // the token's position (its cache row); with pos_ptr, its bound
  const int* pos_ptr = nullptr;      // optional: the position read when the op runs (CUDA graphs)
  void* workspace = nullptr;         // GPU: decode_layers_workspace_bytes(...) bytes; the CPU ignores it
  std::size_t workspace_bytes = 0;
  // GPU, optional (a diagnostic): [num_layers, kDecodeLayersMarks] device memory where CTA 0 writes
  // its clock (clock64) at the start of each layer (0), after the input norm (1), the qkv GEMV (2),
  // the barrier after it (3), attention (4), its barrier (5), the o GEMV (6), its barrier (7), the
  // MLP norm (8), the gate_up GEMV (9), its barrier (10), and the down GEMV (11).
  long long* phase_cycles = nullptr;
};
inline constexpr int kDecodeLayersMarks = 12;

// The GPU workspace for a model of these sizes (any position).
std::size_t decode_layers_workspace_bytes(int inter, int q_heads, int kv_heads);

// Pointers, sizes and the position range; the GPU launcher adds what only it requires.
Status validate(const DecodeLayersArgs& args);

// Whether the GPU op runs models of these sizes (head_dim 128, at most kDecodeLayersMaxGroup q heads
// per kv head and kDecodeLayersMaxKvHeads kv heads, hidden and inter multiples of 16; every Qwen3
// dense model): the engine uses it where this says yes and FP8LM_DECODE_LAYERS is not 0, the
// layered path otherwise.
inline constexpr int kDecodeLayersMaxGroup = 8;
inline constexpr int kDecodeLayersMaxKvHeads = 32;
bool decode_layers_supported(int hidden, int inter, int q_heads, int kv_heads, int head_dim);
// FP8LM_DECODE_LAYERS (an A/B knob, kernels/common/knobs.h): whether the engine should use the op.
bool decode_layers_enabled();

Status decode_layers(const DecodeLayersArgs& args, cudaStream_t stream);

namespace cpu {
Status decode_layers(const DecodeLayersArgs& args);
}  // namespace cpu

}  // namespace fp8lm
