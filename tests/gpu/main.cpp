// GPU test runner: exits with 77 (ctest: skipped) when there is no CUDA device, so the suite
// skips cleanly on machines without a GPU (CI).
#include <gtest/gtest.h>

#include <cstdio>

#include "fp8lm/device.h"

int main(int argc, char** argv) {
  std::string why;
  if (!fp8lm::cuda_device_available(&why)) {
    std::printf("fp8lm GPU tests skipped: no CUDA device (%s)\n", why.c_str());
    return 77;
  }
  fp8lm::DeviceInfo device;
  if (fp8lm::Status s = fp8lm::current_device(&device); !s.ok()) {
    std::printf("fp8lm GPU tests: %s\n", s.message().c_str());
    return 1;
  }
  std::printf("fp8lm GPU tests on %s (sm_%d, %d SMs)\n", device.name.c_str(), device.sm_version(), device.sm_count);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
