// The CPU backend: the reference twins of every kernel, in host memory.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "engine/model/backend.h"
#include "fp8lm/cpu.h"

namespace fp8lm {

namespace {

constexpr std::size_t kAlignment = 64;

class CpuBackend final : public Backend {
 public:
  DeviceKind kind() const override { return DeviceKind::kCpu; }
  std::string describe() const override {
    return "cpu: " + std::to_string(std::max(1u, std::thread::hardware_concurrency())) + " threads";
  }
  std::size_t available_bytes() const override {
    const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) : 0;
  }

  Status allocate(std::size_t bytes, void** out) override {
    const std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    *out = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
    if (*out == nullptr) return Status::Error("cpu backend: out of memory allocating " + std::to_string(bytes) + " bytes");
    return Status::Ok();
  }
  void release(void* p) override { std::free(p); }
  Status upload(void* dst, const void* src, std::size_t bytes) override {
    std::memcpy(dst, src, bytes);
    return Status::Ok();
  }
  Status allocate_host(std::size_t bytes, void** out) override { return allocate(bytes, out); }
  void release_host(void* p) override { release(p); }
  Status download(void* dst, const void* src, std::size_t bytes) override {
    std::memcpy(dst, src, bytes);
    return Status::Ok();
  }
  Status download_async(void* dst, const void* src, std::size_t bytes) override { return download(dst, src, bytes); }
  Status synchronize() override { return Status::Ok(); }

  Status embed(const EmbedArgs& a) override { return cpu::embed(a); }
  Status rmsnorm(const RmsNormArgs& a) override { return cpu::rmsnorm(a); }
  Status quantize(const QuantizeArgs& a) override { return cpu::quantize_per_token_group(a); }
  Status gemm(const Fp8GemmArgs& a) override { return cpu::gemm_fp8_blockwise(a); }
  Status grouped_gemm(const Fp8GroupedGemmArgs& a) override { return cpu::gemm_fp8_grouped(a); }
  Status qk_norm_rope(const QkNormRopeArgs& a) override { return cpu::qk_norm_rope(a); }
  Status attention(const AttentionArgs& a) override { return cpu::attention(a); }
  Status silu_mul(const SiluMulArgs& a) override { return cpu::silu_mul(a); }
  Status add(const AddArgs& a) override { return cpu::add(a); }
  Status rmsnorm_quantize(const RmsNormQuantizeArgs& a) override { return cpu::rmsnorm_quantize(a); }
  Status silu_mul_quantize(const SiluMulQuantizeArgs& a) override { return cpu::silu_mul_quantize(a); }
  Status gate_up_swiglu(const GateUpSwigluArgs& a) override { return cpu::gate_up_swiglu(a); }
  Status grouped_gate_up_swiglu(const GroupedGateUpSwigluArgs& a) override { return cpu::grouped_gate_up_swiglu(a); }
  Status lm_head(const LmHeadArgs& a) override { return cpu::lm_head(a); }
  Status greedy_token(const GreedyTokenArgs& a) override { return cpu::greedy_token(a); }
  Status moe_route_plan(const MoeRouteArgs& route, const MoePlanArgs& plan) override {
    return cpu::moe_route_plan(route, plan);
  }
  Status moe_combine(const MoeCombineArgs& a) override { return cpu::moe_combine(a); }
  Status decode_layers(const DecodeLayersArgs& a) override { return cpu::decode_layers(a); }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace fp8lm
