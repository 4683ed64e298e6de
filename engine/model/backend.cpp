#include "engine/model/backend.h"

namespace fp8lm {

std::unique_ptr<Backend> make_cpu_backend();
Status make_cuda_backend(std::unique_ptr<Backend>* out);

Status parse_device_kind(const std::string& text, DeviceKind* out) {
  if (text == "cpu") {
    *out = DeviceKind::kCpu;
    return Status::Ok();
  }
  if (text == "cuda") {
    *out = DeviceKind::kCuda;
    return Status::Ok();
  }
  return Status::Error("unknown device '" + text + "': expected cpu or cuda");
}

Status Backend::create(DeviceKind kind, std::unique_ptr<Backend>* out) {
  if (kind == DeviceKind::kCpu) {
    *out = make_cpu_backend();
    return Status::Ok();
  }
  return make_cuda_backend(out);
}

Status Backend::capture_graph(const std::function<Status()>&, std::unique_ptr<BackendGraph>*) {
  return Status::Error(describe() + ": graphs are not supported");
}

}  // namespace fp8lm
