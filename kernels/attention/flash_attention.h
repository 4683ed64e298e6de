// The tensor-core attention kernels (mma.sync: flash_attention.cu; wgmma, prefill on sm_90a:
// flash_sm90.cu) and the key split they share with the merge kernel in attention.cu; internal to
// the kernel layer: attention() in attention.cu calls them.
#pragma once

#include <cuda_runtime_api.h>

#include "fp8lm/layer_ops.h"
#include "fp8lm/status.h"

namespace fp8lm::flash {

// Keys per tile of the flash kernel (a KV page is whole tiles: kKvPageMultiple).
inline constexpr int kBlockN = 64;
// Stacked (query, q head) rows per CTA: 4 warps of one m16 fragment each.
inline constexpr int kWarps = 4;
inline constexpr int kRowsPerWarp = 16;
inline constexpr int kBlockM = kWarps * kRowsPerWarp;
// A split is worth its merge only with at least this many keys.
inline constexpr int kMinKeysPerSplit = 4 * kBlockN;
// Per (query, q head, split) in the workspace: the split's normalized output row, its running max
// (of score * scale * log2 e) and its sum of exp2(score * scale * log2 e - max).
inline constexpr int kPartialFloats = kAttentionPartialFloats;

// How the keys of a call whose last query sees max_keys keys are split over at most max_splits
// CTAs along grid z: `splits` splits (1: no split, the kernel writes bf16 output), split s taking
// key tiles [s * tiles_per_split, (s + 1) * tiles_per_split) (possibly none for the last splits).
// The split count grows with max_keys and never exceeds max_splits, so a launch sized for a longer
// context (a CUDA graph, grid z from the bound) splits exactly as one sized for this context:
// splits(k, splits(bound, M)) == splits(k, M) for k <= bound. Both kernels compute it on the device.
struct KeySplit {
  int splits;
  int tiles_per_split;
};
__host__ __device__ __forceinline__ KeySplit plan_key_split(int max_keys, int max_splits) {
  const int by_keys = max_keys / kMinKeysPerSplit;
  const int splits = by_keys < max_splits ? by_keys : max_splits;
  const int tiles = (max_keys + kBlockN - 1) / kBlockN;
  if (splits <= 1) return {1, tiles};
  return {splits, (tiles + splits - 1) / splits};
}

// CTAs of the flash kernel for a call: x = kv head, y = block of kBlockM (query, q head) rows,
// z = split.
inline int flash_row_blocks(int n, int q_heads, int kv_heads) {
  return (n * (q_heads / kv_heads) + kBlockM - 1) / kBlockM;
}

// Flash CTAs that fit on the card at once (occupancy x SMs, measured once): split planning fills
// one wave.
Status flash_wave_ctas(int* ctas);

// Causal GQA attention with AttentionArgs semantics (fp8lm/layer_ops.h) for any n >= 1, start_pos
// by value or from start_pos_ptr. max_splits == 1: every CTA walks all its keys and writes the bf16
// output. max_splits > 1 (grid z; args.workspace holds n * q_heads * plan_key_split(...).splits
// partials): each CTA walks its split's keys and writes a partial row, or, when the plan has one
// split for the current position, the bf16 output; attention.cu's merge kernel combines them.
// Expects what attention() has checked: validate(args) passed, head_dim 128, qkv, caches and out
// 16-byte aligned, page_size a multiple of kKvPageMultiple. Any group q_heads / kv_heads works.
// Runs the one-token kernel where use_decode_attention() says so, the wgmma kernel where
// use_wgmma_attention() does, else the mma.sync kernel.
Status attention(const AttentionArgs& args, int max_splits, cudaStream_t stream);

// The mma.sync kernel (flash_attention.cu; sm_89 and sm_90a), whatever the call.
Status attention_mma(const AttentionArgs& args, int max_splits, cudaStream_t stream);

// The wgmma kernel (flash_sm90.cu) for prefill-sized calls without a key split on sm_90: at least
// this many stacked (query, head) rows (n * q_heads / kv_heads): 8 of its 128-row CTAs per kv head,
// a guess at where it starts to pay (not measured; smaller calls keep the mma.sync kernel, which
// also splits keys). FP8LM_FLASH_WGMMA=0 in the environment turns it off (A/B timing).
inline constexpr int kWgmmaAttentionMinRows = 1024;
bool use_wgmma_attention(const AttentionArgs& args, int max_splits);
// Whether the wgmma kernel splits P into bf16 hi + lo (flash_attention.cu, PRECISION): yes unless
// FP8LM_FLASH_P_SPLIT=0 in the environment (an A/B knob: half the P.V work, P to 8 bits).
bool flash_p_split();
// Same contract as attention() with max_splits == 1.
Status attention_sm90(const AttentionArgs& args, cudaStream_t stream, bool p_split);

// One query token (decode): the kernel of flash_decode.cu, the contract of attention() for n == 1
// and q_heads / kv_heads <= 16 (every Qwen3 model), with the same key split (partials for the
// merge kernel when the plan splits). use_decode_attention: whether flash::attention runs it for a
// call (FP8LM_FLASH_DECODE=0 in the environment keeps the flash kernel: A/B timing).
bool use_decode_attention(const AttentionArgs& args);
Status attention_decode(const AttentionArgs& args, int max_splits, cudaStream_t stream);

}  // namespace fp8lm::flash
