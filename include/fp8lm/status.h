// Errors are values: every fallible call returns a Status that names what is wrong.
#pragma once

#include <string>
#include <utility>

namespace fp8lm {

class [[nodiscard]] Status {
 public:
  static Status Ok() { return Status(); }
  static Status Error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return ok_; }
  const std::string& message() const { return message_; }

 private:
  Status() = default;
  explicit Status(std::string message) : ok_(false), message_(std::move(message)) {}
  bool ok_ = true;
  std::string message_;
};

// Returns early from the enclosing function when `expr` yields an error Status.
#define FP8LM_RETURN_IF_ERROR(expr)            \
  do {                                         \
    ::fp8lm::Status fp8lm_status_ = (expr);    \
    if (!fp8lm_status_.ok()) return fp8lm_status_; \
  } while (0)

}  // namespace fp8lm
