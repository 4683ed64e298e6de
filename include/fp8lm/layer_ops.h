// The non-GEMM operations of a Qwen3 layer, each with a CUDA launcher (namespace fp8lm) and a CPU
// twin (namespace fp8lm::cpu) taking the same argument struct. Semantics follow Hugging Face
// transformers' modeling_qwen3 in bf16, including where it rounds to bf16 between steps, so the
// engine can be compared with it position by position.
//
// Shapes are row-major; `n` is the number of tokens in the call. All pointers are in the memory of
// the backend that runs the op (device memory for the launchers, host memory for the twins).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "fp8lm/numerics.h"
#include "fp8lm/status.h"

namespace fp8lm {

// out[t] = table[tokens[t]] (rows of `hidden` bf16). Token ids must be in [0, vocab): the launcher
// cannot check device memory, so callers validate ids on the host.
struct EmbedArgs {
  const std::int32_t* tokens;  // [n]
  const bf16* table;           // [vocab, hidden]
  bf16* out;                   // [n, hidden]
  int n;
  int vocab;
  int hidden;
};

// RMSNorm as transformers computes it: r = rsqrt(mean(x^2) + eps) in fp32;
// out = bf16(weight * bf16(x * r)) (the normalized value is rounded to bf16 before the weight).
// Summation order of x^2 (shared by both backends, so they agree bit for bit): element i adds into
// partial (i / 8) % 32 in increasing i; the 32 partials are combined by an xor butterfly (masks 16,
// 8, 4, 2, 1: p[l] = p[l] + p[l ^ mask]), i.e. one warp with 16-byte loads. mean = sum / dim,
// r = 1 / sqrt(mean + eps), all IEEE fp32 (see fp8lm/layer_math.h). GPU: dim, strides % 8 == 0.
struct RmsNormArgs {
  const bf16* x;       // [rows, dim], row stride `x_stride` elements
  const bf16* weight;  // [dim]
  bf16* out;           // [rows, dim], row stride `out_stride` (may equal x: in place)
  int rows;
  int dim;
  int x_stride;
  int out_stride;
  float eps;
};

// RMSNorm (as RmsNormArgs: same roundings, same summation order) fused with the optional residual
// add before it and the 1x128 FP8 quantization after it (fp8lm/quant.h), for the input of an FP8
// linear:
//   x = bf16(x + residual)                          when residual is not null (AddArgs), in place;
//   h = bf16(weight * bf16(x * r))                  RmsNormArgs on the (new) x;
//   q8, scales = quantize_per_token_group(h)        when q8 is not null;
//   out = h                                         when out is not null (bf16: the MoE router).
// Bit for bit the chain add -> rmsnorm -> quantize_per_token_group it replaces, on both backends.
// Rows are contiguous (stride dim). dim % 16 == 0 (the quantizer's rule); GPU: pointers 16-byte
// aligned.
struct RmsNormQuantizeArgs {
  bf16* x;               // [rows, dim]: the residual stream; only read when residual is null
  const bf16* residual;  // [rows, dim] or null (no add)
  const bf16* weight;    // [dim]
  bf16* out;             // [rows, dim] or null
  fp8_e4m3* q8;          // [rows, dim] or null (then scales is null too)
  float* scales;         // [rows, ceil(dim / 128)]
  int rows;
  int dim;
  float eps;
};

// out = quantize_per_token_group(bf16(bf16(silu(gate)) * up)): SiluMulArgs followed by the 1x128
// FP8 quantization, bit for bit the unfused chain, without the bf16 activations in memory.
// inter % 16 == 0; GPU: pointers 16-byte aligned.
struct SiluMulQuantizeArgs {
  const bf16* gate_up;  // [n, 2 * inter]
  fp8_e4m3* q8;         // [n, inter]
  float* scales;        // [n, ceil(inter / 128)]
  int n;
  int inter;
};

// The KV cache is paged: a sequence's cache row r (its token at position r) lives in page
// block_table[r / page_size] of a pool shared by sequences, at physical row
// paged_row(block_table, page_size, r) of the pool's K and V arrays ([pool rows, kv_heads *
// head_dim] each). A contiguous cache is the table {0, 1, 2, ...}. Page ids in the table must be
// pages of the pool (the engine's allocator hands out only those; the ops cannot check device
// memory); entries past the rows an op touches are never read.
// GPU: page_size must be a multiple of kKvPageMultiple, so that the flash prefill kernel's key
// tile never straddles two pages (one table lookup per tile).
inline constexpr int kKvPageMultiple = 64;  // kernels/attention/flash_attention.h: kBlockN

FP8LM_HOST_DEVICE std::size_t paged_row(const std::int32_t* block_table, int page_size, int row) {
  return static_cast<std::size_t>(block_table[row / page_size]) * page_size + row % page_size;
}

// Attention input preparation for tokens at positions start_pos .. start_pos + n - 1:
//  - per-head RMSNorm of q (q_norm weight) and k (k_norm weight), as RmsNormArgs, in place in qkv,
//    except that the sum of squares uses partials of 4 elements (element i adds into partial
//    (i / 4) % 32; one warp per head with 8-byte loads), then the same xor butterfly;
//  - neox RoPE (rotate_half) on q and k with cos/sin of (position * theta^(-2i/head_dim)) computed
//    in fp32 and rounded to bf16, and q*cos, rotate_half(q)*sin and their sum each rounded to bf16
//    (transformers' bf16 arithmetic); exactly as rope_cos_sin() in fp8lm/layer_math.h;
//  - k (normed, rotated) and v copied into the paged cache at the sequence's rows start_pos + t.
// Both backends agree bit for bit. The CPU twin accepts any even head_dim (small hand-checked
// cases); the launcher supports exactly 128.
// qkv row layout: [q_heads * head_dim | kv_heads * head_dim (k) | kv_heads * head_dim (v)].
struct QkNormRopeArgs {
  bf16* qkv;            // [n, (q_heads + 2 kv_heads) * head_dim]; q and k rewritten in place
  const bf16* q_norm;   // [head_dim]
  const bf16* k_norm;   // [head_dim]
  bf16* k_cache;        // the pool: [pool rows, kv_heads * head_dim]
  bf16* v_cache;        // the pool: [pool rows, kv_heads * head_dim]
  const std::int32_t* block_table;  // [ceil(cache_capacity / page_size)] page ids (see paged_row)
  int page_size;        // rows per page, >= 1
  int n;
  int start_pos;        // start_pos + n <= cache_capacity (checked)
  int cache_capacity;   // rows of the sequence that block_table maps
  int q_heads;
  int kv_heads;
  int head_dim;         // 128 for every Qwen3 model (the launchers support exactly 128)
  float eps;
  float rope_theta;
  // When set, the start position is read from here (an int in the op's memory) when the op runs,
  // and start_pos is only its upper bound (checked as above): a CUDA graph records the op once and
  // replays it at every decode position. On the GPU it is read before the kernel waits for its
  // predecessor (programmatic dependent launch), so it must be written by a copy or by a kernel
  // at least two launches earlier, never by the kernel just before (the engine uploads it).
  const int* start_pos_ptr = nullptr;
};

// Causal grouped-query attention over the paged cache (see paged_row): query t (at position
// start_pos + t) attends to the sequence's cache rows 0 .. start_pos + t; q head h reads kv head
// h / (q_heads / kv_heads). Scores q.k * scale and the softmax in fp32, P.V accumulated in fp32,
// output rounded to bf16.
// The backends differ in summation order and exp (tests allow for it). The qkv row stride is
// (q_heads + 2 kv_heads) * head_dim, the cache row stride kv_heads * head_dim. q_heads must be a
// multiple of kv_heads; the launcher supports head_dim 128 and any group q_heads / kv_heads.
// Optional GPU workspace (device memory, the twin ignores it): when the kernel's CTAs would leave
// the card idle (decode, small batches) and the context is long, the launcher splits the keys over
// several CTAs whose partial softmax states go through the workspace and are merged by a second
// kernel. attention_workspace_bytes(n, q_heads) is enough for the most splits; less (or none) means
// fewer (or no) splits, same results up to summation order. Calls sharing a workspace must not run
// concurrently. The split of the keys depends only on start_pos + n and the workspace (see
// attention.cu), so a call with start_pos_ptr computes the same bits as one with that start_pos.
// start_pos_ptr: as in QkNormRopeArgs (read when the op runs; start_pos is then the upper bound,
// which sizes the launch for the longest context the recording will see).
struct AttentionArgs {
  const bf16* qkv;      // q read from the first q_heads * head_dim columns of each qkv row
  const bf16* k_cache;  // the pool: [pool rows, kv_heads * head_dim]
  const bf16* v_cache;
  const std::int32_t* block_table;  // [ceil(cache_capacity / page_size)] page ids (see paged_row)
  int page_size;        // rows per page, >= 1; GPU: a multiple of kKvPageMultiple
  bf16* out;            // [n, q_heads * head_dim]
  int n;
  int start_pos;        // start_pos + n <= cache_capacity (checked)
  int cache_capacity;   // rows of the sequence that block_table maps
  int q_heads;
  int kv_heads;
  int head_dim;
  float scale;          // 1 / sqrt(head_dim)
  float* workspace = nullptr;         // optional, see above
  std::size_t workspace_bytes = 0;
  const int* start_pos_ptr = nullptr;  // optional, see above
  // Optional, for the o projection: `out` also quantized as quantize_per_token_group(out) would
  // (head_dim 128, so one 1x128 group per head): q8 [n, q_heads * 128] FP8, q8_scales [n, q_heads].
  // The GPU quantizes in the kernel that writes `out` (one launch less per layer).
  fp8_e4m3* q8 = nullptr;
  float* q8_scales = nullptr;
  // Optional, one token (n == 1, decode): qk_norm_rope(*rope) done by the op itself first, on the
  // same token (rope's qkv, caches, block table, page size, positions and heads must be this
  // call's). qkv then holds the raw projections; the token's k and v go into the caches as
  // qk_norm_rope writes them, and the attention reads q and k as it would after qk_norm_rope. The
  // GPU does it inside the attention kernel where it can (one launch less per decode layer; qkv's
  // q and k stay raw), else, like the CPU twin, calls qk_norm_rope first, which rewrites them.
  const QkNormRopeArgs* rope = nullptr;
};

// The workspace that lets attention split keys as much as it wants for n tokens (head_dim 128):
// per (token, q head, split) an fp32 output row and its softmax max and sum. Splits happen only
// when the flash kernel's CTAs (kv heads x blocks of 64 stacked (query, head) rows) are fewer than
// one wave of the card, so sizing it for the largest decode batch is enough.
inline constexpr int kAttentionMaxSplits = 128;
inline constexpr int kAttentionPartialFloats = 128 + 2;  // per (token, q head, split)
inline std::size_t attention_workspace_bytes(int n, int q_heads) {
  return static_cast<std::size_t>(n > 0 ? n : 0) * (q_heads > 0 ? q_heads : 0) * kAttentionMaxSplits *
         kAttentionPartialFloats * sizeof(float);
}

// out = bf16(bf16(silu(gate)) * up), gate_up rows = [gate (inter) | up (inter)].
// silu(x) = x / (1 + exp(-x)) in fp32 with exp_f32 (fp8lm/layer_math.h: IEEE operations only), so
// both backends agree bit for bit. GPU: inter % 8 == 0.
struct SiluMulArgs {
  const bf16* gate_up;  // [n, 2 * inter]
  bf16* out;            // [n, inter]
  int n;
  int inter;
};

// x = bf16(x + y), elementwise (residual connections). GPU: x and y 16-byte aligned.
struct AddArgs {
  bf16* x;
  const bf16* y;
  std::size_t count;
};

// logits[t, v] = sum_h x[t, h] * weight[v, h], fp32 accumulation and fp32 output (the bf16
// lm_head; transformers rounds logits to bf16, which only coarsens them). GPU: hidden % 8 == 0.
struct LmHeadArgs {
  const bf16* x;       // [n, hidden]
  const bf16* weight;  // [vocab, hidden]
  float* logits;       // [n, vocab]
  int n;
  int hidden;
  int vocab;
};

// The greedy choice of the next token from one row of logits, made where the logits are, so that
// a decode step can feed the next one without the host (Qwen3Model::generate_greedy): token = the
// index of the largest logit, the smallest such index on ties; NaN logits are never chosen (all
// NaN: 0). Then step[0] = token and step[1] += 1 (the next step's token and position, which the
// decode step reads from there), and, when host_tokens is set, host_tokens[p % ring] = token with p
// the position before the increment. host_tokens is page-locked host memory (Backend::
// allocate_host, which a GPU kernel can write), read by the host once the step has run.
struct GreedyTokenArgs {
  const float* logits;        // [vocab]
  int vocab;
  std::int32_t* step;         // [2]: token, position
  std::int32_t* host_tokens;  // [ring] or null
  int ring;
};

// Checks shared by each launcher and its twin (pointers, sizes, consistency); the launchers add
// their alignment requirements. n == 0 (rows == 0, count == 0) is a valid no-op.
Status validate(const EmbedArgs& args);
Status validate(const RmsNormArgs& args);
Status validate(const QkNormRopeArgs& args);
Status validate(const AttentionArgs& args);
Status validate(const SiluMulArgs& args);
Status validate(const AddArgs& args);
Status validate(const LmHeadArgs& args);
Status validate(const GreedyTokenArgs& args);
Status validate(const RmsNormQuantizeArgs& args);
Status validate(const SiluMulQuantizeArgs& args);

// GPU launchers: validate, return an error without launching on bad input, else enqueue on
// `stream`. embed writes NaN rows for ids outside [0, vocab) instead of reading out of bounds.
Status embed(const EmbedArgs& args, cudaStream_t stream);
Status rmsnorm(const RmsNormArgs& args, cudaStream_t stream);
Status qk_norm_rope(const QkNormRopeArgs& args, cudaStream_t stream);
Status attention(const AttentionArgs& args, cudaStream_t stream);
Status silu_mul(const SiluMulArgs& args, cudaStream_t stream);
Status add(const AddArgs& args, cudaStream_t stream);
Status rmsnorm_quantize(const RmsNormQuantizeArgs& args, cudaStream_t stream);
Status silu_mul_quantize(const SiluMulQuantizeArgs& args, cudaStream_t stream);
// Through cuBLASLt (bf16 inputs, fp32 accumulation and output); the handle and workspace are
// created on first use per device and kept for the life of the process.
Status lm_head(const LmHeadArgs& args, cudaStream_t stream);
// One CTA; logits 16-byte aligned with vocab % 4 == 0 load four at a time.
Status greedy_token(const GreedyTokenArgs& args, cudaStream_t stream);

// CPU twins (threads: attention and lm_head use all hardware threads). embed refuses ids outside
// [0, vocab) with an error naming the position; qk_norm_rope and attention refuse a *start_pos_ptr
// outside [0, start_pos].
namespace cpu {
Status embed(const EmbedArgs& args);
Status rmsnorm(const RmsNormArgs& args);
Status qk_norm_rope(const QkNormRopeArgs& args);
Status attention(const AttentionArgs& args);
Status silu_mul(const SiluMulArgs& args);
Status add(const AddArgs& args);
Status lm_head(const LmHeadArgs& args);
Status greedy_token(const GreedyTokenArgs& args);
Status rmsnorm_quantize(const RmsNormQuantizeArgs& args);
Status silu_mul_quantize(const SiluMulQuantizeArgs& args);
}  // namespace cpu

}  // namespace fp8lm
