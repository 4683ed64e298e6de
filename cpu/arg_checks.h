// The building blocks of the ops' argument checks (validate.cpp, layer_ops_validate.cpp,
// moe_ops.cpp): each returns Ok or an error "fn: what", naming the op, the argument and what was
// expected.
#pragma once

#include <string>

#include "fp8lm/status.h"

namespace fp8lm::arg_checks {

inline std::string str(long long v) { return std::to_string(v); }

inline Status need(bool ok, const char* fn, const std::string& what) {
  if (ok) return Status::Ok();
  return Status::Error(std::string(fn) + ": " + what);
}

inline Status not_null(const void* p, const char* fn, const char* name) {
  return need(p != nullptr, fn, std::string(name) + " is a null pointer");
}

inline Status positive(long long v, const char* fn, const char* name) {
  return need(v >= 1, fn, std::string(name) + " = " + str(v) + " must be >= 1");
}

inline Status non_negative(long long v, const char* fn, const char* name) {
  return need(v >= 0, fn, std::string(name) + " = " + str(v) + " must be >= 0");
}

}  // namespace fp8lm::arg_checks
