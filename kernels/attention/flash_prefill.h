// The tensor-core prefill attention kernel (flash_prefill.cu), internal to the kernel layer:
// attention() in attention.cu calls it for calls with many query tokens.
#pragma once

#include <cuda_runtime_api.h>

#include "fp8lm/layer_ops.h"
#include "fp8lm/status.h"

namespace fp8lm::flash {

// attention() uses the flash kernel from this many query tokens on. A flash CTA owns 64 (query,
// q head) rows of one kv head and walks all their keys, so the grid has n * group / 64 * kv_heads
// CTAs; at 64 tokens that is already >= kv_heads * group = q_heads full CTAs (64 for the 8B
// shape), each doing tensor-core work that the split-K kernel would do on CUDA cores with K and V
// re-read per token. Below it the grid is too small to fill the card without splitting the keys,
// which the split-K kernel does. Chosen from that count, not yet measured: the crossover is for
// the timing tests (tests/gpu/layer_ops_gpu_test.cpp) to settle.
inline constexpr int kPrefillMinTokens = 64;

// Causal GQA attention with AttentionArgs semantics (fp8lm/layer_ops.h) for any n >= 1. Expects
// what attention() has checked: validate(args) passed, head_dim 128, qkv, caches and out 16-byte
// aligned, page_size a multiple of kKvPageMultiple. Any group q_heads / kv_heads works. The
// workspace is not used.
Status prefill_attention(const AttentionArgs& args, cudaStream_t stream);

}  // namespace fp8lm::flash
