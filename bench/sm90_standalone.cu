// Standalone check + timing of the sm90 kernels (no CMake, no third-party libraries), for the GPU
// machine before the project harness exists:
//   nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Iinclude -Ikernels \
//        bench/sm90_standalone.cu kernels/gemm/sm90_blockwise.cu -o sm90_standalone
//   ./sm90_standalone [check|time|variants|all]   (bench/sm90_device_run.sh does this on the GPU machine)
// Oracle: dequantize the same FP8 inputs, accumulate in fp64 (sampled rows for big M).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fp8lm/gemm.h"
#include "gemm/sm90_blockwise.h"

using namespace fp8lm;

#define CK(x)                                                                          \
  do {                                                                                 \
    cudaError_t e_ = (x);                                                              \
    if (e_ != cudaSuccess) {                                                           \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(1);                                                                    \
    }                                                                                  \
  } while (0)

static float fp8_to_float(uint8_t b) {
  const int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
  float v = e == 0 ? std::ldexp(m / 8.0f, -6) : std::ldexp(1.0f + m / 8.0f, e - 7);
  return s ? -v : v;
}
static float bf16_bits_to_float(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

struct Problem {
  int m, n, k;
  std::vector<uint8_t> a, b;
  std::vector<float> sa, sb;
};

static void fill(Problem& p, std::mt19937& rng) {
  const int kb = (p.k + 127) / 128, nb = (p.n + 127) / 128;
  p.a.resize(size_t(p.m) * p.k);
  p.b.resize(size_t(p.n) * p.k);
  p.sa.resize(size_t(p.m) * kb);
  p.sb.resize(size_t(nb) * kb);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> sc(0.25f, 4.0f);
  auto code = [&] {
    int c;
    do c = byte(rng);
    while ((c & 0x7f) == 0x7f);  // no NaN codes
    return uint8_t(c);
  };
  for (auto& x : p.a) x = code();
  for (auto& x : p.b) x = code();
  for (auto& x : p.sa) x = sc(rng) * 1e-2f;
  for (auto& x : p.sb) x = sc(rng) * 1e-2f;
}

// Reference rows `rows` of out, fp64.
static std::vector<double> reference(const Problem& p, const std::vector<int>& rows) {
  const int kb = (p.k + 127) / 128;
  std::vector<double> ref(rows.size() * size_t(p.n));
  std::vector<float> lut(256);
  for (int i = 0; i < 256; ++i) lut[i] = fp8_to_float(uint8_t(i));
  const int threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::vector<double> arow(p.k);
      for (size_t ri = 0; ri < rows.size(); ++ri) {
        const int r = rows[ri];
        for (int kk = 0; kk < p.k; ++kk)
          arow[kk] = double(lut[p.a[size_t(r) * p.k + kk]]) * p.sa[size_t(r) * kb + kk / 128];
        for (int c = t; c < p.n; c += threads) {
          double s = 0;
          const uint8_t* brow = &p.b[size_t(c) * p.k];
          const float* sbr = &p.sb[size_t(c / 128) * kb];
          for (int blk = 0; blk < kb; ++blk) {
            double part = 0;
            for (int kk = blk * 128; kk < std::min(p.k, blk * 128 + 128); ++kk) part += arow[kk] * lut[brow[kk]];
            s += part * sbr[blk];
          }
          ref[ri * p.n + c] = s;
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  return ref;
}

struct Dev {
  uint8_t *a = nullptr, *b = nullptr;
  float *sa = nullptr, *sb = nullptr;
  uint16_t* out = nullptr;
};

static Dev upload(const Problem& p) {
  Dev d;
  CK(cudaMalloc(&d.a, p.a.size()));
  CK(cudaMalloc(&d.b, p.b.size()));
  CK(cudaMalloc(&d.sa, p.sa.size() * 4));
  CK(cudaMalloc(&d.sb, p.sb.size() * 4));
  CK(cudaMalloc(&d.out, size_t(p.m) * p.n * 2));
  CK(cudaMemcpy(d.a, p.a.data(), p.a.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(d.b, p.b.data(), p.b.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(d.sa, p.sa.data(), p.sa.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(d.sb, p.sb.data(), p.sb.size() * 4, cudaMemcpyHostToDevice));
  return d;
}
static void release(Dev& d) {
  cudaFree(d.a);
  cudaFree(d.b);
  cudaFree(d.sa);
  cudaFree(d.sb);
  cudaFree(d.out);
}
static Fp8GemmArgs args_of(const Problem& p, const Dev& d, const uint8_t* b = nullptr) {
  return Fp8GemmArgs{reinterpret_cast<const fp8_e4m3*>(d.a), d.sa,
                     reinterpret_cast<const fp8_e4m3*>(b ? b : d.b), d.sb,
                     reinterpret_cast<bf16*>(d.out), p.m, p.n, p.k};
}

static std::vector<GemmConfig> all_configs() {
  std::vector<GemmConfig> v(sm90::configs().begin(), sm90::configs().end());
  v.push_back({GemmKernel::kSm90Wgmma, 128, 128, 6, 0, 1});  // no-multicast twin, for comparison
  v.push_back({GemmKernel::kSm90Wgmma, 128, 128, 6, -1, 2}); // two partial accumulators (PIPE)
  return v;
}
static std::string cname(const GemmConfig& c) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s_m%dn%ds%dc%dk%d", c.kernel == GemmKernel::kSm90Wgmma ? "wgmma" : "decode",
                c.block_m, c.block_n, c.stages, c.cluster_m, c.split_k);
  return buf;
}

static DeviceInfo device_info() {
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  DeviceInfo d;
  d.ordinal = 0;
  d.name = prop.name;
  d.cc_major = prop.major;
  d.cc_minor = prop.minor;
  d.sm_count = prop.multiProcessorCount;
  d.l2_bytes = prop.l2CacheSize;
  d.smem_optin_bytes = prop.sharedMemPerBlockOptin;
  d.global_mem_bytes = prop.totalGlobalMem;
  return d;
}

static int check(const DeviceInfo& dev) {
  std::mt19937 rng(1234);
  struct S {
    int m, n, k;
  };
  const std::vector<S> shapes = {{1, 128, 128},     {2, 256, 256},  {5, 64, 48}, {2, 24, 16},     {3, 100, 272},    {7, 200, 336},
                                 {16, 1024, 2048},  {17, 130, 144},    {33, 520, 1040},  {64, 1000, 1040},
                                 {100, 2048, 1024}, {129, 192, 400},   {256, 6144, 4096}, {1000, 1030, 2064},
                                 {1, 4096, 12288},  {4096, 4096, 4096}, {300, 3072, 1024}, {5, 24576, 4096}};
  int failures = 0;
  for (const S& s : shapes) {
    Problem p{s.m, s.n, s.k};
    fill(p, rng);
    Dev d = upload(p);
    std::vector<int> rows;
    if (p.m <= 160) {
      for (int r = 0; r < p.m; ++r) rows.push_back(r);
    } else {
      for (int r = 0; r < 24; ++r) rows.push_back(r);
      for (int r = p.m - 24; r < p.m; ++r) rows.push_back(r);
      for (int r = 0; r < 24; ++r) rows.push_back(int(rng() % p.m));
    }
    const auto ref = reference(p, rows);
    std::vector<GemmConfig> cfgs = all_configs();
    cfgs.push_back({GemmKernel::kSm90Decode, 16, 64, 8, 1});
    cfgs.push_back({GemmKernel::kSm90Decode, 16, 64, 8, 3});
    cfgs.push_back({GemmKernel::kSm90Decode, 16, 64, 8, 8});
    for (const GemmConfig& c : cfgs) {
      std::vector<uint16_t> out(size_t(p.m) * p.n);
      CK(cudaMemset(d.out, 0xFF, out.size() * 2));  // NaN poison
      Status st = sm90::launch_sm90_blockwise(args_of(p, d), c, dev, 0);
      if (!st.ok()) {
        std::printf("FAIL %-22s m=%d n=%d k=%d: %s\n", cname(c).c_str(), p.m, p.n, p.k, st.message().c_str());
        ++failures;
        continue;
      }
      cudaError_t e = cudaDeviceSynchronize();
      if (e != cudaSuccess) {
        std::printf("FAIL %-22s m=%d n=%d k=%d: %s\n", cname(c).c_str(), p.m, p.n, p.k, cudaGetErrorString(e));
        return 100;
      }
      CK(cudaMemcpy(out.data(), d.out, out.size() * 2, cudaMemcpyDeviceToHost));
      size_t nan = 0;
      for (uint16_t h : out) nan += std::isnan(bf16_bits_to_float(h));
      double num = 0, den = 0;
      for (size_t ri = 0; ri < rows.size(); ++ri)
        for (int c2 = 0; c2 < p.n; ++c2) {
          const double g = bf16_bits_to_float(out[size_t(rows[ri]) * p.n + c2]);
          const double r = ref[ri * p.n + c2];
          num += (g - r) * (g - r);
          den += r * r;
        }
      const double err = std::sqrt(num / den);
      const bool ok = nan == 0 && err < 5e-3;
      failures += !ok;
      std::printf("%s %-22s m=%-5d n=%-6d k=%-6d rel_err=%.2e unwritten=%zu\n", ok ? "ok  " : "FAIL",
                  cname(c).c_str(), p.m, p.n, p.k, err, nan);
    }
    release(d);
  }
  std::printf("check: %d failures\n", failures);
  return failures;
}

// Time by CUDA-graph replay over rotating weight copies (> 2x L2), median of replays.
static double time_us(const Problem& p, Dev& d, const std::vector<uint8_t*>& bcopies, const GemmConfig& c,
                      const DeviceInfo& dev, bool* ok) {
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  *ok = true;
  for (uint8_t* b : bcopies) {  // warm-up + validation outside the graph
    Status st = sm90::launch_sm90_blockwise(args_of(p, d, b), c, dev, s);
    if (!st.ok()) {
      *ok = false;
      std::printf("  %s: %s\n", cname(c).c_str(), st.message().c_str());
      cudaStreamDestroy(s);
      return 0;
    }
  }
  CK(cudaStreamSynchronize(s));
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  for (uint8_t* b : bcopies) (void)sm90::launch_sm90_blockwise(args_of(p, d, b), c, dev, s);
  CK(cudaStreamEndCapture(s, &g));
  CK(cudaGraphInstantiate(&ge, g, 0));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  CK(cudaGraphLaunch(ge, s));
  std::vector<float> ts;
  for (int r = 0; r < 7; ++r) {
    CK(cudaEventRecord(e0, s));
    CK(cudaGraphLaunch(ge, s));
    CK(cudaEventRecord(e1, s));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    ts.push_back(ms * 1000.f / bcopies.size());
  }
  std::sort(ts.begin(), ts.end());
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaStreamDestroy(s);
  return ts[ts.size() / 2];
}

static void timing(const DeviceInfo& dev) {
  // Copy bandwidth (bytes read + written) on 2 GiB.
  const size_t bytes = size_t(1) << 30;
  void *x, *y;
  CK(cudaMalloc(&x, bytes));
  CK(cudaMalloc(&y, bytes));
  CK(cudaMemset(x, 1, bytes));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  std::vector<float> ts;
  for (int r = 0; r < 6; ++r) {
    CK(cudaEventRecord(e0));
    CK(cudaMemcpyAsync(y, x, bytes, cudaMemcpyDeviceToDevice));
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    ts.push_back(ms);
  }
  std::sort(ts.begin(), ts.end());
  const double copy_bw = 2.0 * bytes / (ts[3] * 1e-3);  // B/s
  cudaFree(x);
  cudaFree(y);
  const double fp8_peak = 1.46e15;  // tensorwise FP8 cuBLASLt on H200 (issue 3); not measured here
  std::printf("device %s, %d SMs, copy bandwidth %.0f GB/s, fp8 peak assumed %.0f TFLOP/s\n",
              dev.name.c_str(), dev.sm_count, copy_bw / 1e9, fp8_peak / 1e12);

  std::mt19937 rng(99);
  const int nk[][2] = {{6144, 4096}, {4096, 4096}, {24576, 4096}, {4096, 12288}, {1024, 2048}, {3072, 1024}};
  const int ms[] = {1, 4, 16, 64, 256, 1024, 4096, 16384};
  std::printf("%-6s %-6s %-6s %-22s %10s %9s %8s %7s\n", "m", "n", "k", "config", "us", "TFLOP/s", "GB/s", "%floor");
  for (auto& s : nk) {
    for (int m : ms) {
      Problem p{m, s[0], s[1]};
      fill(p, rng);
      Dev d = upload(p);
      const size_t wbytes = size_t(p.n) * p.k;
      const int copies = std::max<int>(1, int((3 * dev.l2_bytes) / wbytes) + 1);
      std::vector<uint8_t*> bc;
      for (int i = 0; i < std::min(copies, 64); ++i) {
        uint8_t* b;
        CK(cudaMalloc(&b, wbytes));
        CK(cudaMemcpy(b, d.b, wbytes, cudaMemcpyDeviceToDevice));
        bc.push_back(b);
      }
      const int kb = (p.k + 127) / 128;
      const double moved = double(wbytes) + double(m) * p.k + 4.0 * (double(m) * kb + double((p.n + 127) / 128) * kb) +
                           2.0 * m * p.n;
      const double flops = 2.0 * m * double(p.n) * p.k;
      const double floor_us = std::max(moved / copy_bw, flops / fp8_peak) * 1e6;
      std::vector<GemmConfig> cfgs;
      if (m <= 64) {
        cfgs.push_back({GemmKernel::kSm90Decode, m <= 16 ? 16 : (m <= 32 ? 32 : 64), 64, 8});
      }
      if (m >= 64) {
        cfgs.push_back({GemmKernel::kSm90Wgmma, 64, 128, 8});
        cfgs.push_back({GemmKernel::kSm90Wgmma, 128, 128, 6, 0, 1});
        cfgs.push_back({GemmKernel::kSm90Wgmma, 128, 128, 6, 0, 2});
        cfgs.push_back({GemmKernel::kSm90Wgmma, 128, 128, 6, -1, 2});
        cfgs.push_back({GemmKernel::kSm90Wgmma, 128, 192, 5, 0, 2});
      }
      for (const GemmConfig& c : cfgs) {
        bool ok;
        const double us = time_us(p, d, bc, c, dev, &ok);
        if (!ok) continue;
        std::printf("%-6d %-6d %-6d %-22s %10.2f %9.1f %8.0f %6.1f%%\n", m, p.n, p.k, cname(c).c_str(), us,
                    flops / us * 1e-6, moved / us * 1e-3, 100.0 * floor_us / us);
      }
      for (uint8_t* b : bc) cudaFree(b);
      release(d);
    }
  }
}

// Variant comparison: one compact line per (shape, config).
static void variants(const DeviceInfo& dev) {
  using K = GemmKernel;
  const std::vector<GemmConfig> big = {
      {K::kSm90Wgmma, 128, 128, 6, 0, 1}, {K::kSm90Wgmma, 128, 128, 6, 0, 2}, {K::kSm90Wgmma, 128, 128, 4, 0, 1},
      {K::kSm90Wgmma, 64, 128, 8, 0, 1}};
  std::vector<GemmConfig> dec16, dec64;
  for (int sk : {0, 8}) dec16.push_back({K::kSm90Decode, 16, 64, 8, sk});
  for (int sk : {0, 8}) dec64.push_back({K::kSm90Decode, 64, 64, 8, sk});
  dec64.push_back({K::kSm90Wgmma, 64, 128, 8, 0, 1});
  struct Row {
    int m, n, k;
    const std::vector<GemmConfig>* cfgs;
  };
  const std::vector<Row> rows = {
      {4096, 4096, 12288, &big}, {16384, 24576, 4096, &big}, {4096, 1024, 2048, &big},  {1, 4096, 4096, &dec16},
      {1, 4096, 12288, &dec16},  {1, 51200, 5120, &dec16},   {1, 1024, 2048, &dec16},   {16, 6144, 4096, &dec16},
      {64, 4096, 12288, &dec64}};
  std::mt19937 rng(7);
  for (const Row& r : rows) {
    Problem p{r.m, r.n, r.k};
    fill(p, rng);
    Dev d = upload(p);
    const size_t wbytes = size_t(p.n) * p.k;
    const int copies = std::min(64, std::max<int>(2, int((3 * dev.l2_bytes) / wbytes) + 1));
    std::vector<uint8_t*> bc;
    for (int i = 0; i < copies; ++i) {
      uint8_t* b;
      CK(cudaMalloc(&b, wbytes));
      CK(cudaMemcpy(b, d.b, wbytes, cudaMemcpyDeviceToDevice));
      bc.push_back(b);
    }
    const double flops = 2.0 * r.m * double(r.n) * r.k;
    const double bytes = double(wbytes) + double(r.m) * r.k + 2.0 * r.m * r.n;
    for (const GemmConfig& c : *r.cfgs) {
      bool ok;
      const double us = time_us(p, d, bc, c, dev, &ok);
      if (ok)
        std::printf("V %5d %5d %5d %-24s %9.2f us %6.0f TF %5.0f GB/s\n", r.m, r.n, r.k, cname(c).c_str(), us,
                    flops / us * 1e-6, bytes / us * 1e-3);
    }
    for (uint8_t* b : bc) cudaFree(b);
    release(d);
  }
}

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "all";
  const DeviceInfo dev = device_info();
  int rc = 0;
  if (mode == "check" || mode == "all") rc = check(dev);
  if (mode == "time" || mode == "all") timing(dev);
  if (mode == "variants") variants(dev);
  return rc;
}
