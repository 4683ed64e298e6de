// Argument validation of the GEMM entry point (shared by the GPU launcher and the CPU twin): each
// mistake gets a message naming the argument, and nothing is written.
#include <gtest/gtest.h>

#include <vector>

#include "fp8lm/cpu.h"
#include "fp8lm/decode_layers.h"
#include "fp8lm/mlp_ops.h"

namespace fp8lm {
namespace {

struct Buffers {
  alignas(16) fp8_e4m3 a[64 * 32];
  alignas(16) fp8_e4m3 b[64 * 32];
  alignas(16) float sa[64];
  alignas(16) float sb[64];
  alignas(16) bf16 out[64 * 64];
};

std::string error_of(const Fp8GemmArgs& args) {
  const Status s = validate(args);
  return s.ok() ? "" : s.message();
}

TEST(GemmValidate, AcceptsGoodArguments) {
  Buffers buf{};
  EXPECT_EQ(error_of({buf.a, buf.sa, buf.b, buf.sb, buf.out, 2, 3, 32}), "");
}

TEST(GemmValidate, NamesTheBadArgument) {
  Buffers buf{};
  EXPECT_NE(error_of({buf.a, buf.sa, buf.b, buf.sb, buf.out, 2, 3, 24}).find("k = 24 must be a multiple of 16"),
            std::string::npos);
  EXPECT_NE(error_of({buf.a, buf.sa, buf.b, buf.sb, buf.out, 2, 3, 0}).find("k = 0"), std::string::npos);
  EXPECT_NE(error_of({buf.a, buf.sa, buf.b, buf.sb, buf.out, 2, 0, 32}).find("n = 0"), std::string::npos);
  EXPECT_NE(error_of({buf.a, buf.sa, buf.b, buf.sb, buf.out, -1, 3, 32}).find("m = -1"), std::string::npos);
  EXPECT_NE(error_of({nullptr, buf.sa, buf.b, buf.sb, buf.out, 2, 3, 32}).find("a (activations"), std::string::npos);
  EXPECT_NE(error_of({buf.a, nullptr, buf.b, buf.sb, buf.out, 2, 3, 32}).find("a_scales"), std::string::npos);
  EXPECT_NE(error_of({buf.a, buf.sa, nullptr, buf.sb, buf.out, 2, 3, 32}).find("b (weights"), std::string::npos);
  EXPECT_NE(error_of({buf.a, buf.sa, buf.b, nullptr, buf.out, 2, 3, 32}).find("b_scales"), std::string::npos);
  EXPECT_NE(error_of({buf.a, buf.sa, buf.b, buf.sb, nullptr, 2, 3, 32}).find("out"), std::string::npos);
  EXPECT_NE(error_of({buf.a + 1, buf.sa, buf.b, buf.sb, buf.out, 2, 3, 32}).find("16-byte aligned"),
            std::string::npos);
}

TEST(GemmValidate, EmptyBatchIsANoOp) {
  EXPECT_EQ(error_of({nullptr, nullptr, nullptr, nullptr, nullptr, 0, 3, 32}), "");
  EXPECT_TRUE(cpu::gemm_fp8_blockwise({nullptr, nullptr, nullptr, nullptr, nullptr, 0, 3, 32}).ok());
}

TEST(GemmValidate, CpuTwinWritesNothingOnError) {
  Buffers buf{};
  for (auto& v : buf.out) v = bf16{0x1234};
  EXPECT_FALSE(cpu::gemm_fp8_blockwise({buf.a, buf.sa, buf.b, buf.sb, buf.out, 2, 3, 24}).ok());
  for (auto& v : buf.out) ASSERT_EQ(v.bits, 0x1234);
}

// gate_up_swiglu (fp8lm/mlp_ops.h), dense and grouped: the activation must read the GEMM's output
// and must not write over its input (the GPU writes the first groups while other CTAs still read).
TEST(GateUpSwigluValidate, NamesTheBrokenLink) {
  alignas(16) static fp8_e4m3 a[4 * 256], b[512 * 256], act_q8[4 * 256];
  alignas(16) static float sa[64], sb[64], act_scales[64];
  alignas(16) static bf16 out[4 * 512], other[4 * 512];
  std::int32_t offsets[3] = {0, 2, 4};
  const Fp8GemmArgs gemm{a, sa, b, sb, out, 4, 512, 256};
  const Fp8GroupedGemmArgs grouped{a, sa, b, sb, offsets, out, 4, 2, 256, 256, 2};
  auto error = [](const Status& s) { return s.ok() ? std::string() : s.message(); };
  EXPECT_EQ(error(validate(GateUpSwigluArgs{gemm, {out, act_q8, act_scales, 4, 256}})), "");
  EXPECT_NE(error(validate(GateUpSwigluArgs{gemm, {other, act_q8, act_scales, 4, 256}})).find("act.n == gemm.m"),
            std::string::npos);
  EXPECT_NE(error(validate(GateUpSwigluArgs{gemm, {out, act_q8, act_scales, 3, 256}})).find("gate_up_swiglu"),
            std::string::npos);
  EXPECT_NE(error(validate(GateUpSwigluArgs{gemm, {out, a, act_scales, 4, 256}})).find("must not be the GEMM's input"),
            std::string::npos);
  EXPECT_EQ(error(validate(GroupedGateUpSwigluArgs{grouped, {out, act_q8, act_scales, 4, 128}})), "");
  EXPECT_NE(error(validate(GroupedGateUpSwigluArgs{grouped, {out, act_q8, act_scales, 4, 64}}))
                .find("act.n == gemm.total_rows, 2 * act.inter == gemm.n"),
            std::string::npos);
  EXPECT_NE(error(validate(GroupedGateUpSwigluArgs{grouped, {out, act_q8, sa, 4, 128}})).find("grouped_gate_up_swiglu"),
            std::string::npos);
}

// decode_layers: each bad size or position named; the twin changes nothing then; the sizes the GPU
// op runs (every Qwen3 dense model) and those it refuses.
TEST(DecodeLayersValidate, NamesTheBadArgument) {
  DecodeLayerWeights layer{};
  bf16 x[256] = {};
  const std::int32_t table[1] = {0};
  const DecodeLayersArgs good{&layer, 1, x, 256, 768, 4, 2, 128, 1e-6f, 1e6f, 0.088f, table, 64, 64, 63};
  auto error = [](const DecodeLayersArgs& a) {
    const Status s = validate(a);
    return s.ok() ? std::string() : s.message();
  };
  EXPECT_EQ(error(good), "");
  DecodeLayersArgs a = good;
  a.pos = 64;
  EXPECT_NE(error(a).find("pos = 64 must be below cache_capacity = 64"), std::string::npos) << error(a);
  a = good, a.hidden = 250;
  EXPECT_NE(error(a).find("multiples of 16"), std::string::npos) << error(a);
  a = good, a.q_heads = 5;
  EXPECT_NE(error(a).find("q_heads = 5 must be a multiple of kv_heads = 2"), std::string::npos) << error(a);
  a = good, a.head_dim = 64;
  EXPECT_NE(error(a).find("head_dim = 64 must be 128"), std::string::npos) << error(a);
  a = good, a.layers = nullptr;
  EXPECT_NE(error(a).find("layers is a null pointer"), std::string::npos) << error(a);
  a = good, a.pos = 70;
  EXPECT_FALSE(cpu::decode_layers(a).ok());
  for (const bf16 v : x) EXPECT_EQ(v.bits, 0);  // nothing written
  // Qwen3 0.6B .. 32B: 16/8, 32/8, 40/8, 64/8 heads; not 9 q heads per kv head or head_dim 64.
  EXPECT_TRUE(decode_layers_supported(1024, 3072, 16, 8, 128));
  EXPECT_TRUE(decode_layers_supported(5120, 17408, 40, 8, 128));
  EXPECT_TRUE(decode_layers_supported(5120, 25600, 64, 8, 128));
  EXPECT_FALSE(decode_layers_supported(5120, 25600, 72, 8, 128));
  EXPECT_FALSE(decode_layers_supported(1024, 3072, 16, 8, 64));
  EXPECT_FALSE(decode_layers_supported(1000, 3072, 16, 8, 128));
}

}  // namespace
}  // namespace fp8lm
