// Every layer of a dense Qwen3 model for one token in one persistent kernel (fp8lm/decode_layers.h).
//
// Why: at batch 1 a decode step is a weight stream (8B: 193 MB per layer, 46 us at 4.2 TB/s), but
// the layered path spends ~93 us per 8B layer and 0.6B's step is 6.7x its floor: each of a layer's
// 7-9 kernels pays its own latency chain after it waits for the previous one (first loads, block
// reductions, grid completion), and fusing kernels pairwise did not remove that (docs/engine.md,
// "Decode fusions"). Here the grid stays resident (a cooperative launch: all CTAs co-resident)
// and a layer is five phases separated by grid barriers:
//   1. every CTA: rmsnorm + quantize of x into its own shared memory (no barrier for the norm);
//      the qkv GEMV tiles; 2. attention over (kv head, key chunk) items, the last chunk of a head
//      merging the head's chunks and quantizing its output; 3. the o GEMV, each output row added
//      into x by the CTA that computes it; 4. every CTA: the MLP input norm, then the gate_up GEMV
//      in (gate tile, up tile) pairs with SiLU(gate)·up in the epilogue; 5. every CTA: the
//      activation quantized into shared memory, the down GEMV added into x.
// The weight stream does not stop at the barriers: each CTA knows the order of every weight stage
// (16 rows x 1 KB of k) it will read in the whole step, and a ring of shared-memory slots keeps
// `depth - 1` of them in flight (cp.async) ahead of the one it computes, across phases, barriers
// and layers. The first version prefetched into L2 from a register-staged GEMV instead and ran a
// step 2x slower than the layered path (8B 7.04 vs 3.67 ms on an H200: 8 warps per SM with two
// k-blocks each in flight cannot cover the memory latency). The GEMV arithmetic is the GEMV
// kernel's (gemv_kblock.cuh: 16 weight rows, warp w on k-blocks w, w + 8, ..., the same order of
// sums), so each GEMM computes the GEMV kernel's bits for one token (by construction: no test
// compares the two directly).
#include "fp8lm/decode_layers.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "attention/qk_norm_rope.cuh"
#include "common/bf16_vec.cuh"
#include "common/knobs.h"
#include "common/quant_group.cuh"
#include "elementwise/silu_mul_quantize_group.cuh"
#include "fp8lm/cuda_status.h"
#include "fp8lm/device.h"
#include "fp8lm/layer_ops.h"
#include "gemm/gemv_kblock.cuh"
#include "norm/norm_quantize_row.cuh"

namespace fp8lm {

namespace {

using gemv::kBlockK;
using gemv::kRows;

constexpr int kWarps = 8;  // NormQuantizeRow's most; the GEMV tile's k split
constexpr int kThreads = kWarps * 32;
constexpr int kHeadDim = 128;
constexpr int kMaxGroup = kDecodeLayersMaxGroup;
constexpr int kKeyBlock = kThreads;  // keys scored at once: one per thread
constexpr int kMaxChunks = 64;       // key chunks per kv head (items of the attention phase)
constexpr float kLog2e = 1.4426950408889634f;
static_assert(NormQuantizeRow<false>::kMaxRowWarps >= kWarps, "the norm runs on the CTA's warps");

// The workspace: barrier and merge counters, then the activations that cross CTAs.
constexpr std::size_t kCounterBytes = 256;
constexpr int kMergeCounter0 = 32;  // uint32 index of kv head 0's merge counter (the barrier's is 0)
constexpr int kMaxKvHeads = kDecodeLayersMaxKvHeads;
static_assert(kMergeCounter0 + kMaxKvHeads <= static_cast<int>(kCounterBytes / 4), "a merge counter per kv head");
std::size_t align256(std::size_t v) { return (v + 255) / 256 * 256; }

struct Workspace {
  unsigned* counters;
  bf16* qkv;           // [qkv_width]: the qkv GEMV's output
  fp8_e4m3* attn_q8;   // [q_width]: attention's output, quantized (one group per head)
  float* attn_scales;  // [q_heads]
  bf16* act;           // [inter]: SiLU(gate)·up
  float* partials;     // [q_heads, kMaxChunks, 130]: per key chunk, normalized output, max, sum
};

Workspace carve(void* base, int inter, int q_heads, int kv_heads, std::size_t* bytes) {
  char* p = static_cast<char*>(base);
  std::size_t at = 0;
  Workspace w{};
  auto take = [&](std::size_t n) {
    char* q = p == nullptr ? nullptr : p + at;
    at = align256(at + n);
    return q;
  };
  w.counters = reinterpret_cast<unsigned*>(take(kCounterBytes));
  w.qkv = reinterpret_cast<bf16*>(take(static_cast<std::size_t>(q_heads + 2 * kv_heads) * kHeadDim * sizeof(bf16)));
  w.attn_q8 = reinterpret_cast<fp8_e4m3*>(take(static_cast<std::size_t>(q_heads) * kHeadDim));
  w.attn_scales = reinterpret_cast<float*>(take(static_cast<std::size_t>(q_heads) * sizeof(float)));
  w.act = reinterpret_cast<bf16*>(take(static_cast<std::size_t>(inter) * sizeof(bf16)));
  w.partials = reinterpret_cast<float*>(
      take(static_cast<std::size_t>(q_heads) * kMaxChunks * kAttentionPartialFloats * sizeof(float)));
  if (bytes != nullptr) *bytes = at;
  return w;
}

// ---------------------------------------------------------------------------------------------
// Shared memory: the GEMV's view (the quantized activation and the tile's per-warp sums) and the
// attention's, over the same bytes; the RoPE table of the step's position apart.

constexpr int kKeyGroups = 4;                         // P.V: key groups x 64 threads of two dims each
constexpr int kPvUnroll = 16;                         // V loads in flight per thread

struct AttentionSmem {
  float q[kMaxGroup][kHeadDim];  // the group's q heads after norm and RoPE (bf16 values)
  float v_new[kHeadDim];         // the token's value
  uint2 k_row[32], v_row[32];    // the token's cache rows (bf16): key after norm and RoPE, value
  float score_new[kMaxGroup];    // the token's own key against each q head
  float p[kMaxGroup][kKeyBlock];  // scores, then probabilities, of a block of keys
  int rows[kKeyBlock];            // the block's keys' cache rows
  float pv[kKeyGroups][kMaxGroup][kHeadDim];  // P.V of each key group
  float out[kMaxGroup][kHeadDim];             // head outputs (bf16 values)
  float m[kMaxGroup], l[kMaxGroup], factor[kMaxGroup];
  float w[kMaxGroup][kMaxChunks];             // merge: the chunks' maxima, then their weights
  float chunk_l[kMaxGroup][kMaxChunks];
  int last;                                   // this CTA merges the head
};

__host__ __device__ constexpr std::size_t align16(std::size_t v) { return (v + 15) / 16 * 16; }

// The GEMV view for inputs of up to kmax channels: a8 [kmax] codes, scales [kmax / 128], sums
// [2 tiles][kWarps][kRows].
struct GemvSmem {
  fp8_e4m3* a8;
  float* scales;
  float* sums;
  __device__ GemvSmem(char* base, int kmax) {
    a8 = reinterpret_cast<fp8_e4m3*>(base);
    scales = reinterpret_cast<float*>(base + align16(kmax));
    sums = scales + align16(ceil_div(kmax, kQuantGroup) * sizeof(float)) / sizeof(float);
  }
  static std::size_t bytes(int kmax) {
    return align16(kmax) + align16(ceil_div(kmax, kQuantGroup) * sizeof(float)) + 2 * kWarps * kRows * sizeof(float);
  }
};

// The widest GEMV input: the activation view's size.
__host__ __device__ int widest_input(int hidden, int q_width, int inter) {
  return max(max(hidden, q_width), inter);
}
// The phases' views and the layer table.
__host__ __device__ std::size_t layer_table_bytes(int layers) { return align16(layers * sizeof(DecodeLayerWeights)); }
std::size_t smem_bytes(const DecodeLayersArgs& a) {
  return layer_table_bytes(a.num_layers) + std::max(sizeof(AttentionSmem), GemvSmem::bytes(widest_input(a.hidden, a.q_heads * kHeadDim, a.inter)));
}

// ---------------------------------------------------------------------------------------------
// Grid barrier: every CTA arrives once per barrier on one counter (zeroed before the launch); a
// CTA leaves barrier i when the counter reaches i * gridDim.x. The fences make everything written
// before the barrier (by any CTA) visible to every read after it.
__device__ __forceinline__ unsigned load_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

struct GridBarrier {
  unsigned* counter;
  unsigned target = 0;
  __device__ void sync() {
    target += gridDim.x;
    __syncthreads();
    if (threadIdx.x == 0) {
      __threadfence();
      atomicAdd(counter, 1u);
      while (load_acquire(counter) < target) {
      }
      __threadfence();
    }
    __syncthreads();
  }
};

// ---------------------------------------------------------------------------------------------
// The weight stream. A GEMV phase's items are tiles of 16 output rows (gate_up: the gate tile and
// the up tile of the same 16 channels); item i runs on CTA i % gridDim.x. Each tile is read in
// stages of 16 rows x StageShape::k bytes of k, and the CTA's stages, in the order it computes them
// (layer, phase, item, tile, stage), go through a ring of shared-memory slots filled with cp.async
// `depth - 1` stages ahead of the one computed: the loads of the next phase are in flight while
// the CTA waits at a grid barrier or runs attention.
enum Phase { kQkv, kO, kGateUp, kDown, kPhases };

// A stage: `blocks` k-blocks per warp (FP8LM_DECODE_LAYERS_STAGE_KB), warp w on k-blocks w, w + 8,
// ... of the stage (the GEMV kernel's split). Its slot: 16 rows of k bytes, each padded by 16 (the
// 8 rows a mma fragment reads then fall in other banks), then the stage's 8 x blocks weight scales.
struct StageShape {
  int blocks, k, row_bytes, scales_at, bytes;
  __host__ __device__ explicit StageShape(int blocks_)
      : blocks(blocks_),
        k(blocks_ * kWarps * kBlockK),
        row_bytes(k + 16),
        scales_at(kRows * row_bytes),
        bytes(scales_at + (blocks_ * kWarps * static_cast<int>(sizeof(float)) + 15) / 16 * 16) {}
};
constexpr int kMaxDepth = 12;

struct Tile {
  const fp8_e4m3* w;
  const float* scales;
  int n, k, row0;
};

struct Dims {
  int hidden, inter, q_width, kv_width, group, q_heads, kv_heads;
};

__device__ int phase_items(const Dims& d, int phase) {
  switch (phase) {
    case kQkv: return ceil_div(d.q_width + 2 * d.kv_width, kRows);
    case kGateUp: return d.inter / kRows;
    default: return ceil_div(d.hidden, kRows);  // kO, kDown
  }
}
__device__ int phase_tiles(int phase) { return phase == kGateUp ? 2 : 1; }
__device__ int phase_k(const Dims& d, int phase) {
  return phase == kO ? d.q_width : phase == kDown ? d.inter : d.hidden;
}

// Tile `tile` of an item.
__device__ Tile item_tile(const DecodeLayerWeights& L, const Dims& d, int phase, int item, int tile) {
  const int row0 = item * kRows;
  switch (phase) {
    case kQkv: return {L.qkv.weight, L.qkv.scales, d.q_width + 2 * d.kv_width, d.hidden, row0};
    case kO: return {L.o.weight, L.o.scales, d.hidden, d.q_width, row0};
    case kGateUp: return {L.gate_up.weight, L.gate_up.scales, 2 * d.inter, d.hidden, tile * d.inter + row0};
    default: return {L.down.weight, L.down.scales, d.hidden, d.inter, row0};
  }
}

// A stage of this CTA's stream; layer == num_layers past the last.
struct StagePos {
  int layer, phase, item, tile, stage;
  __device__ bool operator==(const StagePos& o) const {
    return layer == o.layer && phase == o.phase && item == o.item && tile == o.tile && stage == o.stage;
  }
};

// From `p` (item possibly past its phase's last) to the CTA's next item that exists.
__device__ void settle(const Dims& d, int layers, StagePos* p) {
  while (p->layer < layers && p->item >= phase_items(d, p->phase)) {
    if (++p->phase == kPhases) p->phase = 0, ++p->layer;
    p->item = static_cast<int>(blockIdx.x);
  }
}

__device__ void advance(const Dims& d, int layers, int stage_k, StagePos* p) {
  if (++p->stage < ceil_div(phase_k(d, p->phase), stage_k)) return;
  p->stage = 0;
  if (++p->tile < phase_tiles(p->phase)) return;
  p->tile = 0;
  p->item += gridDim.x;
  settle(d, layers, p);
}

// cp.async.wait_group takes an immediate: the ring's depth is a launch argument.
__device__ __forceinline__ void cp_async_wait_pending(int n) {
  switch (n) {
    case 0: ptx::cp_async_wait<0>(); break;
    case 1: ptx::cp_async_wait<1>(); break;
    case 2: ptx::cp_async_wait<2>(); break;
    case 3: ptx::cp_async_wait<3>(); break;
    case 4: ptx::cp_async_wait<4>(); break;
    case 5: ptx::cp_async_wait<5>(); break;
    case 6: ptx::cp_async_wait<6>(); break;
    case 7: ptx::cp_async_wait<7>(); break;
    case 8: ptx::cp_async_wait<8>(); break;
    case 9: ptx::cp_async_wait<9>(); break;
    default: ptx::cp_async_wait<10>(); break;
  }
}
static_assert(kMaxDepth - 2 <= 10, "cp_async_wait_pending covers depth - 2");
static_assert(kDecodeLayersStagesKnob.hi <= kMaxDepth, "the knob's deepest ring has its tags");

// The ring: `depth` slots; the producer is `ahead` of the consumer by depth - 1 stages. Nothing on
// a stage's path reads global memory but its own cp.async pieces (the layer table is in shared
// memory, the weight scales travel with the stage): the first ring version read both from global
// memory per stage, a dependent round trip each, and streamed ~0.9 TB/s whatever its depth.
//
// Measured on an H200 (docs/engine.md, "The persistent decode kernel"): the stream runs at ~1.9 TB/s
// whatever the depth (4, 8 or 12 stages), i.e. each stage pays a fixed ~1 us (the CTA's barrier,
// the issue, the mma chain one after the other), not memory latency; bulk copies (TMA, one per
// row, on per-slot mbarriers) instead of cp.async were slower still (~1.1 TB/s).
struct Ring {
  char* slots;
  const DecodeLayerWeights* layers;  // the table, in shared memory
  StagePos* tags;  // the stage each slot holds (checked when it is computed)
  StageShape shape;
  int depth;
  StagePos producer;
  long long issued = 0, consumed = 0;

  // Issues the producer's stage (rows past n are not copied, bytes past k not used) and commits
  // one cp.async group per thread (an empty one past the stream's end), then advances the producer.
  __device__ void issue(const DecodeLayersArgs& a, const Dims& d) {
    if (producer.layer < a.num_layers) {
      const Tile t = item_tile(layers[producer.layer], d, producer.phase, producer.item, producer.tile);
      const int slot = static_cast<int>(issued % depth), k0 = producer.stage * shape.k;
      const int chunks_per_row = shape.k / 16;
      char* dst = slots + static_cast<std::size_t>(slot) * shape.bytes;
      for (int i = threadIdx.x; i < kRows * chunks_per_row; i += kThreads) {
        const int r = i / chunks_per_row, c = i % chunks_per_row, row = t.row0 + r, col = k0 + c * 16;
        const bool ok = row < t.n && col < t.k;
        ptx::cp_async_16(dst + r * shape.row_bytes + c * 16, ok ? t.w + static_cast<std::size_t>(row) * t.k + col : t.w,
                         ok);
      }
      if (threadIdx.x < shape.blocks * kWarps) {  // the scale of the stage's k-block i in the tile's 128-row block
        const int num_kb = ceil_div(t.k, kBlockK), kb = producer.stage * shape.blocks * kWarps + threadIdx.x;
        const float* src = t.scales + static_cast<std::size_t>(t.row0 / kQuantGroup) * num_kb + kb;
        ptx::cp_async_4(dst + shape.scales_at + threadIdx.x * sizeof(float), kb < num_kb ? src : t.scales, kb < num_kb);
      }
      if (threadIdx.x == 0) tags[slot] = producer;
      advance(d, a.num_layers, shape.k, &producer);
    }
    ptx::cp_async_commit();
    ++issued;
  }

  // Waits for the consumer's next stage (all threads), issues the one depth - 1 further, and
  // returns the stage's slot.
  __device__ const char* next(const DecodeLayersArgs& a, const Dims& d, const StagePos& expect) {
    const int slot = static_cast<int>(consumed % depth);
    cp_async_wait_pending(depth - 2);
    __syncthreads();  // every piece has landed; every warp is done with the slot reused below
    if (threadIdx.x == 0 && !(tags[slot] == expect)) __trap();  // the producer's order must be the consumer's
    issue(a, d);
    ++consumed;
    return slots + static_cast<std::size_t>(slot) * shape.bytes;
  }
};

// Warp w's k-blocks of a stage against the one-token activation in shared memory: the GEMV kernel's
// arithmetic for token 0 (gemv.cu: the same k-blocks per warp, summed in the same order).
constexpr int kMaxStageBlocks = 4;
static_assert(kDecodeLayersStageKbKnob.hi <= kMaxStageBlocks, "stage_sums keeps up to 4 k-blocks per warp");
__device__ __forceinline__ void stage_sums(const char* slot, const StageShape& shape, const Tile& t, int stage,
                                           const GemvSmem& s, float& sum0, float& sum2) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gid = lane / 4, tig = lane % 4;
  const int num_kb = ceil_div(t.k, kBlockK);
  float acc[kMaxStageBlocks][4] = {};
#pragma unroll
  for (int i = 0; i < kMaxStageBlocks; ++i) {  // independent mma chains, one per k-block
    const int kb = (stage * shape.blocks + i) * kWarps + warp;
    if (i >= shape.blocks || kb >= num_kb) break;  // warp-uniform
    gemv::WeightChunks w;
    uint4 xv[2];
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      const int at = (i * kWarps + warp) * kBlockK + (tig + 4 * c) * 16;
      // Chunks past k: zeros for both operands (the slot's are zero-filled already).
      const bool in_k = kb * kBlockK + (tig + 4 * c) * 16 < t.k;
#pragma unroll
      for (int r = 0; r < 2; ++r)
        w.v[r][c] =
            in_k ? *reinterpret_cast<const uint4*>(slot + (gid + 8 * r) * shape.row_bytes + at) : make_uint4(0, 0, 0, 0);
      xv[c] = gid == 0 && in_k ? *reinterpret_cast<const uint4*>(s.a8 + kb * kBlockK + (tig + 4 * c) * 16)
                               : make_uint4(0, 0, 0, 0);
    }
    gemv::kblock_mma(w, xv, acc[i]);
  }
#pragma unroll
  for (int i = 0; i < kMaxStageBlocks; ++i) {
    const int kb = (stage * shape.blocks + i) * kWarps + warp;
    if (i >= shape.blocks || kb >= num_kb) break;
    const float scale = s.scales[kb] * reinterpret_cast<const float*>(slot + shape.scales_at)[i * kWarps + warp];
    sum0 = fmaf(acc[i][0], scale, sum0);
    sum2 = fmaf(acc[i][2], scale, sum2);
  }
}

// Row r's total over the warps, in the GEMV kernel's order.
__device__ __forceinline__ float tile_total(const float* sums, int r) {
  float total = 0.f;
#pragma unroll
  for (int v = 0; v < kWarps; ++v) total += sums[v * kRows + r];
  return total;
}

__device__ __forceinline__ __nv_bfloat16* nv(bf16* p) { return reinterpret_cast<__nv_bfloat16*>(p); }

// x[row] = bf16(x[row] + bf16(y)), x[row] read before as `old`: the residual add of
// rmsnorm_quantize (NormQuantizeRow::add_residual).
__device__ __forceinline__ void add_into(bf16* x, int row, float old, float y) {
  nv(x)[row] = __float2bfloat16_rn(__fadd_rn(old, vec::round_bf16(y)));
}

struct Kernel {
  const DecodeLayersArgs& a;
  const Workspace& ws;
  const DecodeLayerWeights* layers;  // a.layers, copied into shared memory
  Dims d;
  int pos;
  char* smem;     // the phases' views: AttentionSmem, or the GEMV's (gemv) over the same bytes
  GemvSmem gemv;
  Ring& ring;
  const float* cos_s;
  const float* sin_s;

  // One GEMV phase of layer l on the activation in shared memory (GemvSmem).
  __device__ void gemv_phase(int l, int phase) {
    const DecodeLayerWeights& L = layers[l];
    const GemvSmem& s = gemv;
    const int items = phase_items(d, phase), tiles = phase_tiles(phase);
    const int stages = ceil_div(phase_k(d, phase), ring.shape.k);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gid = lane / 4, tig = lane % 4;
    const bool residual = phase == kO || phase == kDown;
    for (int item = blockIdx.x; item < items; item += gridDim.x) {
      const int r = threadIdx.x, row = item * kRows + r;
      // The residual row this thread adds into, loaded now rather than after the item's stages.
      const float old = residual && r < kRows && row < d.hidden ? __bfloat162float(nv(a.x)[row]) : 0.f;
      for (int tile = 0; tile < tiles; ++tile) {
        const Tile t = item_tile(L, d, phase, item, tile);
        float sum0 = 0.f, sum2 = 0.f;  // the accumulator's token-0 column: rows gid, gid + 8 (lanes tig == 0)
        for (int stage = 0; stage < stages; ++stage)
          stage_sums(ring.next(a, d, {l, phase, item, tile, stage}), ring.shape, t, stage, s, sum0, sum2);
        float* sums = s.sums + tile * kWarps * kRows;
        if (tig == 0) sums[warp * kRows + gid] = sum0, sums[warp * kRows + gid + 8] = sum2;
      }
      __syncthreads();
      if (r < kRows) {
        const float total = tile_total(s.sums, r);
        if (phase == kQkv) {
          if (row < d.q_width + 2 * d.kv_width) nv(ws.qkv)[row] = __float2bfloat16_rn(total);
        } else if (phase == kGateUp) {
          const float gate = vec::round_bf16(total), up = vec::round_bf16(tile_total(s.sums + kWarps * kRows, r));
          nv(ws.act)[row] = __float2bfloat16_rn(silu_mul_value(gate, up));
        } else if (row < d.hidden) {
          add_into(a.x, row, old, total);
        }
      }
      // The sums are written again only after the next stage's __syncthreads (Ring::next).
    }
  }

  // rmsnorm(x, weight) quantized into the GEMV's activation (every CTA its own copy).
  __device__ void norm_input(const bf16* weight) {
    const GemvSmem& s = gemv;
    NormQuantizeRow<false> norm;
    norm.preload(weight, d.hidden);
    norm.run(a.x, nullptr, nullptr, reinterpret_cast<std::uint32_t*>(s.a8), s.scales, a.eps);
    __syncthreads();
  }

  // The attention output, quantized by the merge, into the GEMV's activation.
  __device__ void load_attention_output() {
    const GemvSmem& s = gemv;
    for (int i = threadIdx.x; i < d.q_width / 16; i += kThreads)
      reinterpret_cast<uint4*>(s.a8)[i] = __ldcg(reinterpret_cast<const uint4*>(ws.attn_q8) + i);
    for (int i = threadIdx.x; i < d.q_heads; i += kThreads) s.scales[i] = __ldcg(ws.attn_scales + i);
    __syncthreads();
  }

  // silu_mul_quantize's quantization of the activation (its values are already SiLU(gate)·up).
  __device__ void quantize_activation() {
    const GemvSmem& s = gemv;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, groups = ceil_div(d.inter, kQuantGroup);
    for (int g = warp; g < groups; g += kWarps) {
      const int col = g * kQuantGroup + lane * kQuantValuesPerLane;
      const bool active = col < d.inter;
      float v[kQuantValuesPerLane] = {0.f, 0.f, 0.f, 0.f};
      if (active) vec::unpack4(__ldcg(reinterpret_cast<const uint2*>(ws.act + col)), v);
      const float scale = quantize_group_warp(v, active, reinterpret_cast<std::uint32_t*>(s.a8) + col / 4);
      if (lane == 0) s.scales[g] = scale;
    }
    __syncthreads();
  }

  // The attention phase of layer l: items (kv head, key chunk). Latency decides its time at short
  // contexts (a few keys, 8 items): every load of a block is issued before its results are used
  // (a key row per thread, 16 V pairs per thread, the cache rows looked up once per block).
  __device__ void attention_phase(int l) {
    const DecodeLayerWeights& L = layers[l];
    AttentionSmem& s = *reinterpret_cast<AttentionSmem*>(smem);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, G = d.group;
    const int keys = pos + 1;
    int chunks = min(min(ceil_div(keys, kKeyBlock), max(1, static_cast<int>(gridDim.x) / d.kv_heads)), kMaxChunks);
    const int per_chunk = ceil_div(keys, chunks);
    chunks = ceil_div(keys, per_chunk);
    const float scale_log2 = a.scale * kLog2e;
    for (int item = blockIdx.x; item < d.kv_heads * chunks; item += gridDim.x) {
      const int h = item / chunks, chunk = item % chunks;
      const int k0 = chunk * per_chunk, k1 = min(keys, k0 + per_chunk);
      // The group's q heads and the kv head's key after norm and RoPE (qk_norm_rope's code), the value.
      for (int r = warp; r < G + 2; r += kWarps) {
        const bool is_q = r < G, is_k = r == G;
        const int col = is_q ? (h * G + r) * kHeadDim : d.q_width + (is_k ? 0 : d.kv_width) + h * kHeadDim;
        const uint2 raw = __ldcg(reinterpret_cast<const uint2*>(ws.qkv + col) + lane);
        uint2 y = raw;
        if (r <= G)
          y = qk_rope::norm_rope(raw, __ldg(reinterpret_cast<const uint2*>(is_q ? L.q_norm : L.k_norm) + lane), cos_s,
                                 sin_s, a.eps, lane);
        if (is_q) {
          float f[4];
          vec::unpack4(y, f);
#pragma unroll
          for (int i = 0; i < 4; ++i) s.q[r][lane * 4 + i] = f[i];
        } else {
          (is_k ? s.k_row : s.v_row)[lane] = y;
          if (!is_k) {
            float f[4];
            vec::unpack4(y, f);
#pragma unroll
            for (int i = 0; i < 4; ++i) s.v_new[lane * 4 + i] = f[i];
          }
        }
      }
      if (threadIdx.x < kMaxGroup) s.m[threadIdx.x] = -INFINITY, s.l[threadIdx.x] = 0.f;
      __syncthreads();
      // The token's own key against each q head (warp g), and its cache rows by the chunk that holds it.
      for (int g = warp; g < G; g += kWarps) {
        float kf[4];
        vec::unpack4(s.k_row[lane], kf);
        float dot = 0.f;
#pragma unroll
        for (int i = 0; i < 4; ++i) dot = fmaf(s.q[g][lane * 4 + i], kf[i], dot);
        dot = vec::warp_butterfly_sum(dot);
        if (lane == 0) s.score_new[g] = dot;
      }
      if (k1 == keys && warp == kWarps - 1) {
        const std::size_t row = paged_row(a.block_table, a.page_size, pos) * d.kv_width + h * kHeadDim;
        reinterpret_cast<uint2*>(L.k_cache + row)[lane] = s.k_row[lane];
        reinterpret_cast<uint2*>(L.v_cache + row)[lane] = s.v_row[lane];
      }
      __syncthreads();
      const int pair = threadIdx.x % (kHeadDim / 2), kgroup = threadIdx.x / (kHeadDim / 2);
      float acc[kMaxGroup][2] = {};
      for (int b0 = k0; b0 < k1; b0 += kKeyBlock) {
        // Scores: thread j scores key b0 + j against every q head of the group (its row's 16
        // vectors all in flight).
        {
          const int key = b0 + threadIdx.x;
          float sc[kMaxGroup] = {};
          if (key < k1 && key != pos) {
            const int row = static_cast<int>(paged_row(a.block_table, a.page_size, key));
            s.rows[threadIdx.x] = row;
            const uint4* kr = reinterpret_cast<const uint4*>(L.k_cache + static_cast<std::size_t>(row) * d.kv_width +
                                                             h * kHeadDim);
            uint4 kv[16];
#pragma unroll
            for (int i = 0; i < 16; ++i) kv[i] = __ldg(kr + i);
#pragma unroll
            for (int i = 0; i < 16; ++i) {
              float kf[8];
              vec::unpack8(kv[i], kf);
#pragma unroll
              for (int e = 0; e < 8; ++e)
#pragma unroll
                for (int g = 0; g < kMaxGroup; ++g)
                  if (g < G) sc[g] = fmaf(s.q[g][i * 8 + e], kf[e], sc[g]);
            }
          }
#pragma unroll
          for (int g = 0; g < kMaxGroup; ++g)
            if (g < G) s.p[g][threadIdx.x] = key >= k1 ? -INFINITY : (key == pos ? s.score_new[g] : sc[g]) * scale_log2;
        }
        __syncthreads();
        // Online softmax per head (warp g): the block's max, the rescale of what came before.
        for (int g = warp; g < G; g += kWarps) {
          float mx = -INFINITY;
          for (int j = lane; j < kKeyBlock; j += 32) mx = fmaxf(mx, s.p[g][j]);
          mx = vec::warp_max(mx);
          const float m_new = fmaxf(s.m[g], mx);
          float sum = 0.f;
          for (int j = lane; j < kKeyBlock; j += 32) {
            const float p = exp2f(s.p[g][j] - m_new);
            s.p[g][j] = p;
            sum += p;
          }
#pragma unroll
          for (int mask = 16; mask > 0; mask >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, mask);
          if (lane == 0) {
            const float f = exp2f(s.m[g] - m_new);  // 0 on the first block (m = -inf)
            s.factor[g] = f;
            s.l[g] = s.l[g] * f + sum;
            s.m[g] = m_new;
          }
        }
        __syncthreads();
        // P.V: thread (pair, kgroup) over keys kgroup, kgroup + 4, ... of the block, kPvUnroll V
        // pairs loaded before they are used.
#pragma unroll
        for (int g = 0; g < kMaxGroup; ++g)
          if (g < G) acc[g][0] *= s.factor[g], acc[g][1] *= s.factor[g];
        const int count = min(kKeyBlock, k1 - b0);
        for (int j0 = kgroup; j0 < count; j0 += kKeyGroups * kPvUnroll) {
          float v[kPvUnroll][2];
#pragma unroll
          for (int u = 0; u < kPvUnroll; ++u) {
            const int j = j0 + u * kKeyGroups, key = b0 + j;
            v[u][0] = v[u][1] = 0.f;
            if (j < count) {
              if (key == pos) {
                v[u][0] = s.v_new[2 * pair], v[u][1] = s.v_new[2 * pair + 1];
              } else {
                const std::uint32_t bits = __ldg(reinterpret_cast<const std::uint32_t*>(
                    L.v_cache + static_cast<std::size_t>(s.rows[j]) * d.kv_width + h * kHeadDim + 2 * pair));
                v[u][0] = vec::lo_bf16(bits), v[u][1] = vec::hi_bf16(bits);
              }
            }
          }
#pragma unroll
          for (int u = 0; u < kPvUnroll; ++u) {
            const int j = j0 + u * kKeyGroups;
            if (j < count)
#pragma unroll
              for (int g = 0; g < kMaxGroup; ++g)
                if (g < G) {
                  acc[g][0] = fmaf(s.p[g][j], v[u][0], acc[g][0]);
                  acc[g][1] = fmaf(s.p[g][j], v[u][1], acc[g][1]);
                }
          }
        }
        __syncthreads();  // p and rows are the next block's
      }
#pragma unroll
      for (int g = 0; g < kMaxGroup; ++g)
        if (g < G) s.pv[kgroup][g][2 * pair] = acc[g][0], s.pv[kgroup][g][2 * pair + 1] = acc[g][1];
      __syncthreads();
      // The chunk's output per q head: final (one chunk) or a partial for the merge.
      const int d_col = threadIdx.x % kHeadDim, half = threadIdx.x / kHeadDim;
      for (int g = half; g < G; g += 2) {
        float o = 0.f;
#pragma unroll
        for (int kg = 0; kg < kKeyGroups; ++kg) o += s.pv[kg][g][d_col];
        o /= s.l[g];
        if (chunks == 1) {
          s.out[g][d_col] = vec::round_bf16(o);
        } else {
          float* part = ws.partials + (static_cast<std::size_t>(h * G + g) * kMaxChunks + chunk) * kAttentionPartialFloats;
          part[d_col] = o;
          if (d_col == 0) part[kHeadDim] = s.m[g], part[kHeadDim + 1] = s.l[g];
        }
      }
      if (chunks > 1) {
        // The last chunk of the head to finish merges them all (the others' partials are visible
        // to it through the counter's fences).
        __syncthreads();
        if (threadIdx.x == 0) {
          __threadfence();
          const unsigned done = atomicAdd(ws.counters + kMergeCounter0 + h, 1u);
          s.last = done == static_cast<unsigned>(chunks - 1);
          if (s.last) ws.counters[kMergeCounter0 + h] = 0;  // for the next layer (after its barriers)
          __threadfence();
        }
        __syncthreads();
        if (!s.last) continue;
        const float* head_parts = ws.partials + static_cast<std::size_t>(h * G) * kMaxChunks * kAttentionPartialFloats;
        for (int i = threadIdx.x; i < G * chunks; i += kThreads) {  // every chunk's (max, sum) at once
          const float* pc = head_parts + (static_cast<std::size_t>(i / chunks) * kMaxChunks + i % chunks) *
                                             kAttentionPartialFloats;
          s.w[i / chunks][i % chunks] = __ldcg(pc + kHeadDim);
          s.chunk_l[i / chunks][i % chunks] = __ldcg(pc + kHeadDim + 1);
        }
        __syncthreads();
        for (int g = warp; g < G; g += kWarps) {
          float mx = -INFINITY;
          for (int c = lane; c < chunks; c += 32) mx = fmaxf(mx, s.w[g][c]);
          mx = vec::warp_max(mx);
          __syncwarp();
          for (int c = lane; c < chunks; c += 32) s.w[g][c] = s.chunk_l[g][c] * exp2f(s.w[g][c] - mx);
        }
        __syncthreads();
        for (int g = half; g < G; g += 2) {
          const float* pg = head_parts + static_cast<std::size_t>(g) * kMaxChunks * kAttentionPartialFloats;
          float num = 0.f, den = 0.f;
#pragma unroll 8
          for (int c = 0; c < chunks; ++c) {
            num += s.w[g][c] * __ldcg(pg + c * kAttentionPartialFloats + d_col);
            den += s.w[g][c];
          }
          s.out[g][d_col] = vec::round_bf16(num / den);
        }
      }
      __syncthreads();
      // The head's 128 outputs are one 1x128 group of the o projection's input.
      for (int g = warp; g < G; g += kWarps) {
        const int head = h * G + g;
        quantize_group_from(s.out[g], ws.attn_q8 + head * kHeadDim, ws.attn_scales + head, lane);
      }
      __syncthreads();  // the shared memory is the next item's
    }
  }
};

// The RoPE table of the step's position (double-precision transcendentals: kept out of line, so
// their registers do not count against the rest of the kernel).
__device__ __noinline__ void rope_table(int pos, float theta, float* cos_s, float* sin_s) {
  if (threadIdx.x < qk_rope::kHalf) qk_rope::table_entry(pos, threadIdx.x, theta, cos_s, sin_s);
}

__global__ void __launch_bounds__(kThreads, 1) decode_layers_kernel(const DecodeLayersArgs a, const Workspace ws,
                                                                 int depth, int stage_blocks) {
  extern __shared__ __align__(16) char smem[];
  __shared__ float cos_s[qk_rope::kHalf], sin_s[qk_rope::kHalf];
  __shared__ StagePos tags[kMaxDepth];
  const int pos = a.pos_ptr != nullptr ? *a.pos_ptr : a.pos;
  const Dims d{a.hidden, a.inter, a.q_heads * kHeadDim, a.kv_heads * kHeadDim, a.q_heads / a.kv_heads, a.q_heads,
               a.kv_heads};
  // Shared memory: the ring (it lives through the whole step), the layer table, the phases' views.
  const StageShape shape(stage_blocks);
  auto* layers = reinterpret_cast<DecodeLayerWeights*>(smem + static_cast<std::size_t>(depth) * shape.bytes);
  for (int i = threadIdx.x; i < a.num_layers; i += kThreads) layers[i] = a.layers[i];
  __syncthreads();
  Ring ring{smem, layers, tags, shape, depth, {0, kQkv, static_cast<int>(blockIdx.x), 0, 0}};
  settle(d, a.num_layers, &ring.producer);
  for (int i = 0; i < depth - 1; ++i) ring.issue(a, d);  // weights: no kernel writes them
  rope_table(pos, a.rope_theta, cos_s, sin_s);
  char* views = reinterpret_cast<char*>(layers) + layer_table_bytes(a.num_layers);
  Kernel k{a, ws, layers, d, pos, views, GemvSmem(views, widest_input(d.hidden, d.q_width, d.inter)), ring, cos_s,
           sin_s};
  GridBarrier barrier{ws.counters};
  // DecodeLayersArgs::phase_cycles: CTA 0's clock at each step below (kDecodeLayersMarks per layer).
  long long* marks = a.phase_cycles != nullptr && blockIdx.x == 0 && threadIdx.x == 0 ? a.phase_cycles : nullptr;
  auto mark = [&](int l, int i) {
    if (marks != nullptr) marks[l * kDecodeLayersMarks + i] = clock64();
  };
  for (int l = 0; l < a.num_layers; ++l) {
    const DecodeLayerWeights& L = layers[l];
    mark(l, 0);
    k.norm_input(L.input_layernorm);  // also orders the RoPE table before its first use
    mark(l, 1);
    k.gemv_phase(l, kQkv);
    mark(l, 2);
    barrier.sync();
    mark(l, 3);
    k.attention_phase(l);
    mark(l, 4);
    barrier.sync();
    mark(l, 5);
    k.load_attention_output();
    k.gemv_phase(l, kO);
    mark(l, 6);
    barrier.sync();
    mark(l, 7);
    k.norm_input(L.post_attention_layernorm);
    mark(l, 8);
    k.gemv_phase(l, kGateUp);
    mark(l, 9);
    barrier.sync();
    mark(l, 10);
    k.quantize_activation();
    k.gemv_phase(l, kDown);
    mark(l, 11);
    if (l + 1 < a.num_layers) barrier.sync();  // the kernel's end orders the last layer's writes
  }
}

// What the launch needs of the device, set up once per process (one device model assumed, as the
// other launchers do): the SM count, and the dynamic shared memory a CTA may use beside the
// kernel's static shared memory, raised to that limit once (an SM holds one CTA either way).
Status set_up_device(int* sms, std::size_t* dynamic_smem) {
  DeviceInfo dev;
  FP8LM_RETURN_IF_ERROR(current_device(&dev));
  cudaFuncAttributes attr{};
  FP8LM_RETURN_IF_ERROR(cuda_status(cudaFuncGetAttributes(&attr, decode_layers_kernel), "decode_layers: attributes"));
  *sms = dev.sm_count;
  *dynamic_smem = dev.smem_optin_bytes - attr.sharedSizeBytes;
  FP8LM_RETURN_IF_ERROR(cuda_status(cudaFuncSetAttribute(decode_layers_kernel,
                                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                         static_cast<int>(*dynamic_smem)),
                                    "decode_layers: shared memory attribute"));
  int per_sm = 0;
  FP8LM_RETURN_IF_ERROR(
      cuda_status(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, decode_layers_kernel, kThreads, *dynamic_smem),
                  "decode_layers: occupancy"));
  if (per_sm < 1) return Status::Error("decode_layers: the kernel does not fit on an SM");
  return Status::Ok();
}
struct DeviceSetup {
  int sms = 0;
  std::size_t dynamic_smem = 0;
  Status status;
};
const DeviceSetup& device_setup() {
  static const DeviceSetup setup = [] {
    int sms = 0;
    std::size_t dynamic_smem = 0;
    Status status = set_up_device(&sms, &dynamic_smem);
    return DeviceSetup{sms, dynamic_smem, std::move(status)};
  }();
  return setup;
}

// The launch: one CTA per SM, all resident; the ring's stage size (FP8LM_DECODE_LAYERS_STAGE_KB)
// and depth (FP8LM_DECODE_LAYERS_STAGES, as far as the shared memory allows: the ring takes most
// of it).
struct LaunchShape {
  int ctas, depth, stage_blocks;
  std::size_t smem;
};
Status launch_shape(const DecodeLayersArgs& a, LaunchShape* shape) {
  static const int wanted = knob_value(kDecodeLayersStagesKnob);
  static const int blocks = knob_value(kDecodeLayersStageKbKnob);
  const DeviceSetup& dev = device_setup();
  FP8LM_RETURN_IF_ERROR(dev.status);
  const StageShape stage(blocks);
  const std::size_t views = smem_bytes(a);
  const long long fit =
      (static_cast<long long>(dev.dynamic_smem) - static_cast<long long>(views)) / static_cast<long long>(stage.bytes);
  shape->depth = static_cast<int>(std::min<long long>(wanted, fit));
  if (shape->depth < 2)
    return Status::Error("decode_layers: " + std::to_string(dev.dynamic_smem) +
                         " bytes of shared memory per block hold fewer than two weight stages besides " +
                         std::to_string(views));
  shape->ctas = dev.sms;
  shape->stage_blocks = blocks;
  shape->smem = views + static_cast<std::size_t>(shape->depth) * stage.bytes;
  return Status::Ok();
}

}  // namespace

std::size_t decode_layers_workspace_bytes(int inter, int q_heads, int kv_heads) {
  std::size_t bytes = 0;
  carve(nullptr, inter, q_heads, kv_heads, &bytes);
  return bytes;
}

bool decode_layers_enabled() {
  static const bool on = knob_value(kDecodeLayersKnob) != 0;
  return on;
}

Status decode_layers(const DecodeLayersArgs& a, cudaStream_t stream) {
  FP8LM_RETURN_IF_ERROR(validate(a));
  if (!decode_layers_supported(a.hidden, a.inter, a.q_heads, a.kv_heads, a.head_dim))
    return Status::Error("decode_layers: the GPU op takes head_dim 128, at most " + std::to_string(kMaxGroup) +
                         " q heads per kv head, at most " + std::to_string(kMaxKvHeads) +
                         " kv heads, hidden and inter multiples of 16 (got head_dim " + std::to_string(a.head_dim) +
                         ", " + std::to_string(a.q_heads) + " / " + std::to_string(a.kv_heads) + " heads, hidden " +
                         std::to_string(a.hidden) + ", inter " + std::to_string(a.inter) + ")");
  std::size_t need = 0;
  const Workspace ws = carve(a.workspace, a.inter, a.q_heads, a.kv_heads, &need);
  if (a.workspace == nullptr || a.workspace_bytes < need)
    return Status::Error("decode_layers: the workspace has " + std::to_string(a.workspace_bytes) + " bytes, it needs " +
                         std::to_string(need) + " (decode_layers_workspace_bytes)");
  if (!vec::aligned16(a.x) || !vec::aligned16(a.workspace))
    return Status::Error("decode_layers: x and the workspace must be 16-byte aligned");
  LaunchShape shape{};
  FP8LM_RETURN_IF_ERROR(launch_shape(a, &shape));
  FP8LM_RETURN_IF_ERROR(cuda_status(cudaMemsetAsync(ws.counters, 0, kCounterBytes, stream), "decode_layers: counters"));
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>(shape.ctas));
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = shape.smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr;
  attr.id = cudaLaunchAttributeCooperative;  // the grid barriers need every CTA resident
  attr.val.cooperative = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  return cuda_status(cudaLaunchKernelEx(&cfg, decode_layers_kernel, a, ws, shape.depth, shape.stage_blocks),
                     "decode_layers launch");
}

}  // namespace fp8lm
