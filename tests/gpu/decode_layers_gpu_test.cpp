// decode_layers (the persistent decode kernel, fp8lm/decode_layers.h) against its CPU twin (the
// layered ops for one token) on fresh random layers, KV caches paged through a shuffled block table
// over a pool whose unused rows are NaN, and the GPU workspace poisoned (0xFF) before the run.
// Shapes: tiny, a ragged one (hidden and inter not multiples of 128, 3 q heads per kv head, 16-row
// pages), Qwen3-0.6B, 8B, 14B (5 q heads per kv head) and 32B (8 per kv head) layers; positions from
// 0 (one key) to 9000 (many key blocks per chunk, chunks merged).
//  - What the GPU computes in other orders (the GEMMs: the GEMV kernel's order, not the twin's;
//    attention: exp2 and another key split) moves bf16 roundings and through them a few FP8 codes:
//    the layers' change to x (x_out - x_in) must agree with the twin's within 2e-2 relative
//    Frobenius error (seen: see the printed values), the new cache rows within 1e-2; a wrong
//    operand, head, position or rotation gives errors of order 1.
//  - Every pool row but the token's keeps its bits (NaN rows stay NaN).
//  - Deterministic: a second run gives the same bits (that run also records CTA 0's clock per phase,
//    DecodeLayersArgs::phase_cycles, printed), and so does the position read from device memory
//    (pos_ptr) with a launch bound of the whole cache (what the decode graph records).
//  - The engine end to end: a 3-layer Qwen3-0.6B-shaped model decoding with the op agrees with the
//    CPU backend at least as well as the GPU's layered path (ModelOptions::decode_layers).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/model/qwen3_model.h"
#include "fp8lm/cpu.h"
#include "fp8lm/decode_layers.h"
#include "fp8lm/device_buffer.h"
#include "fp8lm/random.h"
#include "few_layer_model.h"
#include "paged_cache.h"

namespace fp8lm {
namespace {

constexpr int kHd = 128;
constexpr std::uint16_t kNaN = 0xffff;

struct Shape {
  const char* name;
  int hidden, inter, q_heads, kv_heads, layers, page;
  std::vector<int> positions;
};

// One layer's weights on the host and the device. Random codes over the whole finite range with
// scales that keep each output near unit size (an e4m3 code's RMS is ~100).
struct HostLinear {
  std::vector<fp8_e4m3> w;
  std::vector<float> s;
  HostLinear(int n, int k, Rng& rng) : w(static_cast<std::size_t>(n) * k), s(ceil_div(n, 128) * ceil_div(k, 128)) {
    fill_fp8(w, rng);
    fill_scales(s, rng, 1.0 / (100.0 * std::sqrt(double(k))), 0.5);
  }
};

struct Layer {
  std::vector<bf16> in_norm, post_norm, q_norm, k_norm;
  HostLinear qkv, o, gate_up, down;
  std::vector<bf16> k_pool, v_pool;  // the pools with the sequence's rows < pos filled
  Layer(const Shape& c, Rng& rng)
      : in_norm(random_bf16(c.hidden, rng, 0.1, 1.0)),
        post_norm(random_bf16(c.hidden, rng, 0.1, 1.0)),
        q_norm(random_bf16(kHd, rng, 0.2, 1.0)),
        k_norm(random_bf16(kHd, rng, 0.2, 1.0)),
        qkv((c.q_heads + 2 * c.kv_heads) * kHd, c.hidden, rng),
        o(c.hidden, c.q_heads * kHd, rng),
        gate_up(2 * c.inter, c.hidden, rng),
        down(c.hidden, c.inter, rng) {}
};

struct DeviceLayer {
  DeviceBuffer<bf16> in_norm, post_norm, q_norm, k_norm;
  DeviceBuffer<fp8_e4m3> qkv_w, o_w, gate_up_w, down_w;
  DeviceBuffer<float> qkv_s, o_s, gate_up_s, down_s;
  DeviceBuffer<bf16> k_pool, v_pool;
  explicit DeviceLayer(const Layer& l)
      : in_norm(l.in_norm), post_norm(l.post_norm), q_norm(l.q_norm), k_norm(l.k_norm),
        qkv_w(l.qkv.w), o_w(l.o.w), gate_up_w(l.gate_up.w), down_w(l.down.w),
        qkv_s(l.qkv.s), o_s(l.o.s), gate_up_s(l.gate_up.s), down_s(l.down.s),
        k_pool(l.k_pool), v_pool(l.v_pool) {}
  DecodeLayerWeights weights() {
    return {in_norm.get(), post_norm.get(), q_norm.get(), k_norm.get(), {qkv_w.get(), qkv_s.get()},
            {o_w.get(), o_s.get()}, {gate_up_w.get(), gate_up_s.get()}, {down_w.get(), down_s.get()},
            k_pool.get(), v_pool.get()};
  }
};

DecodeLayerWeights host_weights(Layer& l, std::vector<bf16>& k_pool, std::vector<bf16>& v_pool) {
  return {l.in_norm.data(), l.post_norm.data(), l.q_norm.data(), l.k_norm.data(), {l.qkv.w.data(), l.qkv.s.data()},
          {l.o.w.data(), l.o.s.data()}, {l.gate_up.w.data(), l.gate_up.s.data()}, {l.down.w.data(), l.down.s.data()},
          k_pool.data(), v_pool.data()};
}

double rel_error(const std::vector<double>& got, const std::vector<double>& want) {
  double e2 = 0, r2 = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double d = got[i] - want[i];
    e2 += std::isfinite(d) ? d * d : 1e300;
    r2 += want[i] * want[i];
  }
  return std::sqrt(e2 / std::max(r2, 1e-300));
}

// CTA 0's time per step of each layer (DecodeLayersArgs::phase_cycles), averaged over the layers, in
// us at the SM's clock rate; the marks must not go backwards.
std::string phase_times(const std::vector<long long>& marks, int layers) {
  static const char* names[kDecodeLayersMarks - 1] = {"norm", "qkv", "barrier", "attention", "barrier", "o",
                                                      "barrier", "norm", "gate_up", "barrier", "down"};
  int device = 0, khz = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, device);
  std::string out;
  char buf[64];
  for (int i = 0; i + 1 < kDecodeLayersMarks; ++i) {
    double sum = 0;
    for (int l = 0; l < layers; ++l) {
      const long long* m = &marks[static_cast<std::size_t>(l) * kDecodeLayersMarks];
      EXPECT_LE(m[i], m[i + 1]) << "layer " << l << " mark " << i;
      sum += double(m[i + 1] - m[i]);
    }
    std::snprintf(buf, sizeof buf, " %s %.1f", names[i], sum / layers / (khz * 1e-3));
    out += buf;
  }
  return out;
}

bool same_bits(const std::vector<bf16>& a, const std::vector<bf16>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(bf16)) == 0;
}

class DecodeLayersGpu : public ::testing::TestWithParam<Shape> {};

TEST_P(DecodeLayersGpu, MatchesTwin) {
  const Shape& c = GetParam();
  ASSERT_TRUE(decode_layers_supported(c.hidden, c.inter, c.q_heads, c.kv_heads, kHd));
  const int width = c.kv_heads * kHd;
  for (const int pos : c.positions) {
    Rng rng(7919ull * c.hidden + 104729ull * pos + c.q_heads);
    const int rows = pos + 1, capacity = ceil_div(rows, c.page) * c.page;
    const int pool_pages = ceil_div(rows, c.page) + 3;
    const auto table = testing::shuffled_table(rows, c.page, pool_pages, rng);
    std::vector<Layer> layers;
    for (int l = 0; l < c.layers; ++l) {
      layers.emplace_back(c, rng);
      // Rows 0 .. pos - 1 of the sequence hold earlier tokens; row pos and every other row NaN.
      const auto k_rows = random_bf16(static_cast<std::size_t>(pos) * width, rng, 1.0);
      const auto v_rows = random_bf16(static_cast<std::size_t>(pos) * width, rng, 1.0);
      layers.back().k_pool = testing::scatter_rows(k_rows, pos, width, table, c.page, pool_pages, bf16{kNaN});
      layers.back().v_pool = testing::scatter_rows(v_rows, pos, width, table, c.page, pool_pages, bf16{kNaN});
    }
    const auto x_in = random_bf16(c.hidden, rng, 1.0);
    const float scale = static_cast<float>(1.0 / std::sqrt(double(kHd)));

    // The twin.
    std::vector<std::vector<bf16>> k_want, v_want;
    std::vector<DecodeLayerWeights> host_table;
    for (auto& l : layers) k_want.push_back(l.k_pool), v_want.push_back(l.v_pool);
    for (int l = 0; l < c.layers; ++l) host_table.push_back(host_weights(layers[l], k_want[l], v_want[l]));
    std::vector<bf16> x_want = x_in;
    DecodeLayersArgs args{host_table.data(), c.layers, x_want.data(), c.hidden, c.inter, c.q_heads, c.kv_heads, kHd,
                          1e-6f, 1e6f, scale, table.data(), c.page, capacity, pos};
    const Status cpu_status = cpu::decode_layers(args);
    ASSERT_TRUE(cpu_status.ok()) << cpu_status.message();

    // The GPU: three runs on fresh copies (the position by value twice, then from device memory
    // with the whole pool as the bound).
    std::vector<bf16> x_got[3];
    std::vector<std::vector<bf16>> k_got[3], v_got[3];
    double us = 0;
    std::vector<long long> marks;
    for (int run = 0; run < 3; ++run) {
      std::vector<std::unique_ptr<DeviceLayer>> dev;
      std::vector<DecodeLayerWeights> dev_table;
      for (auto& l : layers) {
        dev.push_back(std::make_unique<DeviceLayer>(l));
        dev_table.push_back(dev.back()->weights());
      }
      DeviceBuffer<DecodeLayerWeights> d_table_layers(dev_table);
      DeviceBuffer<std::int32_t> d_table(table);
      DeviceBuffer<bf16> d_x(x_in);
      DeviceBuffer<int> d_pos(std::vector<int>{pos});
      DeviceBuffer<std::uint8_t> d_ws(decode_layers_workspace_bytes(c.inter, c.q_heads, c.kv_heads));
      d_ws.fill_bytes(0xFF);
      DecodeLayersArgs g{d_table_layers.get(), c.layers, d_x.get(), c.hidden, c.inter, c.q_heads, c.kv_heads, kHd,
                         1e-6f, 1e6f, scale, d_table.get(), c.page, capacity, pos};
      g.workspace = d_ws.get(), g.workspace_bytes = d_ws.bytes();
      if (run == 2) g.pos_ptr = d_pos.get(), g.pos = capacity - 1;
      DeviceBuffer<long long> d_marks(static_cast<std::size_t>(c.layers) * kDecodeLayersMarks);
      if (run == 1) g.phase_cycles = d_marks.get();
      const auto t0 = std::chrono::steady_clock::now();
      const Status s = decode_layers(g, nullptr);
      ASSERT_TRUE(s.ok()) << s.message();
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << c.name << " pos " << pos;
      us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      x_got[run] = d_x.download();
      for (auto& d : dev) k_got[run].push_back(d->k_pool.download()), v_got[run].push_back(d->v_pool.download());
      if (run == 1) marks = d_marks.download();
    }

    // x: the layers' change against the twin's.
    std::vector<double> dg(c.hidden), dw(c.hidden);
    for (int i = 0; i < c.hidden; ++i) {
      dg[i] = double(bf16_to_float(x_got[0][i])) - bf16_to_float(x_in[i]);
      dw[i] = double(bf16_to_float(x_want[i])) - bf16_to_float(x_in[i]);
    }
    const double x_err = rel_error(dg, dw);
    EXPECT_LT(x_err, 2e-2) << c.name << " pos " << pos << ": x_out - x_in against the twin's";
    // The token's cache rows; every other pool row keeps its bits.
    double kv_err = 0;
    const std::size_t token_row = paged_row(table.data(), c.page, pos);
    for (int l = 0; l < c.layers; ++l) {
      for (int kv = 0; kv < 2; ++kv) {
        const auto& got = kv == 0 ? k_got[0][l] : v_got[0][l];
        const auto& want = kv == 0 ? k_want[l] : v_want[l];
        const auto& before = kv == 0 ? layers[l].k_pool : layers[l].v_pool;
        std::vector<double> g(width), w(width);
        for (int i = 0; i < width; ++i) {
          g[i] = bf16_to_float(got[token_row * width + i]);
          w[i] = bf16_to_float(want[token_row * width + i]);
        }
        kv_err = std::max(kv_err, rel_error(g, w));
        for (std::size_t r = 0; r < got.size() / width; ++r) {
          if (r == token_row) continue;
          if (std::memcmp(&got[r * width], &before[r * width], width * sizeof(bf16)) != 0) {
            ADD_FAILURE() << c.name << " pos " << pos << ": layer " << l << (kv ? " V" : " K") << " pool row " << r
                          << " changed (only row " << token_row << " is the token's)";
            break;
          }
        }
      }
    }
    EXPECT_LT(kv_err, 1e-2) << c.name << " pos " << pos << ": the token's K/V rows";
    EXPECT_TRUE(same_bits(x_got[0], x_got[1])) << c.name << " pos " << pos << ": a second run differs";
    EXPECT_TRUE(same_bits(x_got[0], x_got[2])) << c.name << " pos " << pos << ": the position from pos_ptr differs";
    for (int l = 0; l < c.layers; ++l)
      EXPECT_TRUE(same_bits(k_got[0][l], k_got[2][l]) && same_bits(v_got[0][l], v_got[2][l]))
          << c.name << " pos " << pos << " layer " << l << ": cache rows differ with pos_ptr";
    std::printf("  decode_layers %s pos %d: x change rel. error %.2e, K/V rows %.2e (%.0f us incl. launch)\n", c.name,
                pos, x_err, kv_err, us);
    std::printf("    CTA 0 per layer, us:%s\n", phase_times(marks, c.layers).c_str());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, DecodeLayersGpu,
    ::testing::Values(Shape{"tiny", 256, 768, 4, 2, 2, 64, {0, 1, 70}},
                      Shape{"ragged", 272, 400, 6, 2, 2, 16, {0, 130, 600}},
                      Shape{"qwen3_0_6b", 1024, 3072, 16, 8, 2, 64, {0, 63, 64, 700, 5000}},
                      Shape{"qwen3_8b", 4096, 12288, 32, 8, 1, 64, {1, 2100}},
                      Shape{"qwen3_14b", 5120, 17408, 40, 8, 1, 64, {300}},
                      Shape{"qwen3_32b", 5120, 25600, 64, 8, 1, 64, {3, 9000}}),
    [](const auto& info) { return std::string(info.param.name); });

// Bad arguments are refused before anything runs.
TEST(DecodeLayersGpuArgs, RejectsWhatItDoesNotRun) {
  DecodeLayerWeights layer{};
  bf16 x[16];
  std::int32_t table[1] = {0};
  DecodeLayersArgs a{&layer, 1, x, 256, 768, 4, 2, kHd, 1e-6f, 1e6f, 0.088f, table, 64, 64, 0};
  a.workspace = x, a.workspace_bytes = 0;
  Status s = decode_layers(a, nullptr);
  EXPECT_NE(s.message().find("workspace"), std::string::npos) << s.message();
  a.q_heads = 36;  // 18 q heads per kv head
  s = decode_layers(a, nullptr);
  EXPECT_NE(s.message().find("q heads per kv head"), std::string::npos) << s.message();
  a.q_heads = 4, a.pos = 64;
  s = decode_layers(a, nullptr);
  EXPECT_NE(s.message().find("cache_capacity"), std::string::npos) << s.message();
}

// The engine: the same 3-layer model decoding on the CPU backend (the twins), and on the GPU layer
// by layer and with the op. The two GPU paths sum in other orders than the twins (and than each
// other: the flash kernel's attention, the sm90 decode GEMM for weights over 9 MB), so neither
// equals the CPU's logits; the op must agree with the CPU at least as well as the layered path,
// within 2e-3 of cosine (seen: both ~0.999; a broken op gives far less).
double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  for (std::size_t v = 0; v < a.size(); ++v) dot += double(a[v]) * b[v], na += double(a[v]) * a[v], nb += double(b[v]) * b[v];
  return dot / std::sqrt(na * nb);
}

TEST(DecodeLayersGpu, ModelDecodesAsLayerByLayer) {
  const Qwen3Weights w = testing::few_layer_dummy("qwen3-0.6b", 3);
  const Qwen3Config& c = w.config;
  enum Run { kCpu, kGpuLayered, kGpuOp, kRuns };
  std::vector<std::vector<float>> logits[kRuns];
  for (int run = 0; run < kRuns; ++run) {
    std::unique_ptr<Backend> backend;
    ASSERT_TRUE(Backend::create(run == kCpu ? DeviceKind::kCpu : DeviceKind::kCuda, &backend).ok());
    ModelOptions options;
    options.max_context = 2048;
    options.decode_layers = run != kGpuLayered;
    std::unique_ptr<Qwen3Model> m;
    const Status s = Qwen3Model::create(w, *backend, options, &m);
    ASSERT_TRUE(s.ok()) << s.message();
    ASSERT_EQ(m->uses_decode_layers(), run != kGpuLayered);
    std::vector<std::int32_t> prompt(300);
    for (int i = 0; i < 300; ++i) prompt[i] = (i * 7919 + 13) % c.vocab_size;
    std::vector<float> l;
    ASSERT_TRUE(m->forward(prompt, false, &l).ok());
    for (int step = 0; step < 12; ++step) {  // GPU: eager, capture, replays
      const std::int32_t token = (step * 104729 + 7) % c.vocab_size;
      ASSERT_TRUE(m->forward(std::span<const std::int32_t>(&token, 1), false, &l).ok());
      logits[run].push_back(l);
    }
  }
  for (std::size_t step = 0; step < logits[kCpu].size(); ++step) {
    const double op = cosine(logits[kGpuOp][step], logits[kCpu][step]);
    const double layered = cosine(logits[kGpuLayered][step], logits[kCpu][step]);
    EXPECT_GE(op, std::min(layered, 0.9999) - 2e-3) << "decode step " << step;
    std::printf("  model step %zu: cosine with the CPU: op %.6f, layered %.6f\n", step, op, layered);
  }
}

}  // namespace
}  // namespace fp8lm
