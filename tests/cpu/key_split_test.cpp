// flash::plan_key_split (kernels/attention/flash_attention.h), which the flash kernel and the merge
// kernel both compute on the device: the splits cover every key tile, none exceeds the launch, and
// a launch sized for a longer context (the decode graph: grid z from the context bound) splits
// exactly as one sized for the current keys, which is what makes graph replays equal eager steps.
#include <gtest/gtest.h>

#include "attention/flash_attention.h"

namespace fp8lm::flash {
namespace {

int tiles_of(int keys) { return (keys + kBlockN - 1) / kBlockN; }

TEST(KeySplit, CoversEveryTileWithinTheLaunch) {
  for (int max_splits : {1, 2, 3, 33, 66, 128})
    for (int keys = 1; keys <= 41000; keys += keys < 2000 ? 1 : 97) {
      const KeySplit s = plan_key_split(keys, max_splits);
      ASSERT_GE(s.splits, 1);
      ASSERT_LE(s.splits, max_splits) << keys;
      ASSERT_GE(s.tiles_per_split, 1) << keys;
      ASSERT_GE(static_cast<long long>(s.splits) * s.tiles_per_split, tiles_of(keys)) << keys << " " << max_splits;
      if (s.splits > 1) {
        // At least kMinKeysPerSplit keys per split. Trailing splits may be empty (tiles_per_split
        // rounds up; the kernel writes an empty partial for them): dropping them from the count
        // would break the second test's property.
        ASSERT_GE(keys / s.splits, kMinKeysPerSplit) << keys;
      } else {
        ASSERT_EQ(s.tiles_per_split, tiles_of(keys)) << "one split walks every tile";
      }
    }
}

TEST(KeySplit, ALaunchForALongerContextSplitsAsOneForTheseKeys) {
  for (int max_splits : {2, 33, 66, 128})
    for (int bound : {600, 5000, 30848, 40960})
      for (int keys = 1; keys <= bound; keys += keys < 1500 ? 1 : 61) {
        const int launched_now = plan_key_split(keys, max_splits).splits;    // eager: grid z
        const int launched_graph = plan_key_split(bound, max_splits).splits;  // graph: grid z
        const KeySplit now = plan_key_split(keys, launched_now);
        const KeySplit graph = plan_key_split(keys, launched_graph);
        ASSERT_EQ(now.splits, graph.splits) << keys << " of " << bound;
        ASSERT_EQ(now.tiles_per_split, graph.tiles_per_split) << keys << " of " << bound;
        ASSERT_EQ(now.splits, launched_now) << "an eager launch has no surplus CTAs";
      }
}

}  // namespace
}  // namespace fp8lm::flash
