// The kernel trace's arithmetic (bench/kernel_trace.h) on made-up kernel records: what each kernel
// adds to a step when kernels overlap (programmatic dependent launch) or leave the GPU idle, and
// the short kernel names. The CUPTI collection itself needs a GPU (bench one-batch --kernel-trace).
#include "bench/kernel_trace.h"

#include <gtest/gtest.h>

#include <vector>

namespace fp8lm::bench {
namespace {

const KernelShare& share(const std::vector<KernelShare>& shares, const std::string& name) {
  for (const KernelShare& s : shares)
    if (s.name == name) return s;
  static const KernelShare none{};
  ADD_FAILURE() << "no share named " << name;
  return none;
}

TEST(KernelTrace, AddedTimesAndIdleSumToTheSpan) {
  // In ns, given out of order: a [0, 10 us), b starts inside a and ends after it [8, 15 us), c
  // lies inside b [9, 12 us) and adds nothing, then 5 us idle, then a again [20, 24 us).
  const std::vector<TracedKernel> kernels = {
      {"b", 8000, 15000}, {"a", 0, 10000}, {"c", 9000, 12000}, {"a", 20000, 24000}};
  std::vector<KernelShare> shares;
  const StepSummary s = summarize_step(kernels, &shares);
  EXPECT_EQ(s.kernels, 4);
  EXPECT_DOUBLE_EQ(s.span_us, 24.0);
  EXPECT_DOUBLE_EQ(s.idle_us, 5.0);
  EXPECT_EQ(share(shares, "a").launches, 2);
  EXPECT_DOUBLE_EQ(share(shares, "a").added_us, 10.0 + 4.0);
  EXPECT_DOUBLE_EQ(share(shares, "a").busy_us, 14.0);
  EXPECT_DOUBLE_EQ(share(shares, "b").added_us, 5.0);   // 10 -> 15
  EXPECT_DOUBLE_EQ(share(shares, "b").busy_us, 7.0);
  EXPECT_DOUBLE_EQ(share(shares, "c").added_us, 0.0);
  double added = s.idle_us;
  for (const KernelShare& k : shares) added += k.added_us;
  EXPECT_DOUBLE_EQ(added, s.span_us);
  // A second step accumulates onto the same shares.
  summarize_step({{"a", 100000, 103000}}, &shares);
  EXPECT_EQ(share(shares, "a").launches, 3);
  EXPECT_DOUBLE_EQ(share(shares, "a").added_us, 17.0);
  EXPECT_EQ(summarize_step({}, &shares).kernels, 0);
}

TEST(KernelTrace, TimelineInStartOrderWithEachKernelsAddedTime) {
  const std::vector<TimedKernel> t =
      step_timeline({{"b", 8000, 15000}, {"a", 0, 10000}, {"c", 9000, 12000}, {"a", 20000, 24000}});
  ASSERT_EQ(t.size(), 4u);
  const char* names[] = {"a", "b", "c", "a"};
  const double added[] = {10.0, 5.0, 0.0, 4.0};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(t[i].kernel.name, names[i]) << i;
    EXPECT_DOUBLE_EQ(t[i].added_us, added[i]) << i;
  }
}

TEST(KernelTrace, ShortNamesDropNamespacesAndParameters) {
  EXPECT_EQ(short_kernel_name("void fp8lm::sm90::impl::sm90_decode_kernel<16, false, true>(CUtensorMap_st, float "
                              "const*, int)"),
            "sm90_decode_kernel<16, false, true>");
  EXPECT_EQ(short_kernel_name("fp8lm::flash::(anonymous namespace)::flash_decode_kernel(fp8lm::flash::Params, int)"),
            "flash_decode_kernel");
  EXPECT_EQ(short_kernel_name("void fp8lm::(anonymous namespace)::rmsnorm_quantize_kernel<true>(fp8lm::bf16*)"),
            "rmsnorm_quantize_kernel<true>");
  // Mangled (as CUPTI reports them): _Z + fp8lm::add_kernel(int).
  EXPECT_EQ(short_kernel_name("_ZN5fp8lm10add_kernelEi"), "add_kernel");
  EXPECT_EQ(short_kernel_name("nvjet_sm90_tss_384x8_64x4_2x1_v_bz_TNT"), "nvjet_sm90_tss_384x8_64x4_2x1_v_bz_TNT");
}

}  // namespace
}  // namespace fp8lm::bench
