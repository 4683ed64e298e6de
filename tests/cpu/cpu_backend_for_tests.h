// One CPU backend shared by the engine tests of a binary (created on first use).
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "engine/model/backend.h"

namespace fp8lm {

inline Backend& cpu_backend() {
  static const std::unique_ptr<Backend> backend = [] {
    std::unique_ptr<Backend> b;
    EXPECT_TRUE(Backend::create(DeviceKind::kCpu, &b).ok());
    return b;
  }();
  return *backend;
}

}  // namespace fp8lm
