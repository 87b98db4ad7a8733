#pragma once
// Internal to src/exec: what the float and int8 oneDNN paths share.
#include <oneapi/dnnl/dnnl.hpp>
#include <string>

#include "slim/exec/kernel.h"

namespace slim {

/// The CPU engine and stream every oneDNN primitive of the executor runs on.
dnnl::engine& onednn_engine();
dnnl::stream& onednn_stream();

/// Identity of a weight or bias tensor's contents: its storage, and its version counter where the
/// tensor has one (tensors made under InferenceMode do not; they cannot be changed outside it).
struct Stamp {
  const void* impl = nullptr;
  const void* data = nullptr;
  int64_t version = -1;
  static Stamp of(const at::Tensor& t) {
    if (!t.defined()) return {};
    return {t.unsafeGetTensorImpl(), t.data_ptr(), t.is_inference() ? -1 : t._version()};
  }
  bool operator==(const Stamp& o) const {
    return impl == o.impl && data == o.data && version == o.version;
  }
  bool operator!=(const Stamp& o) const { return !(*this == o); }
};

/// True when oneDNN picked its reference (unoptimised) implementation: ATen is faster then.
inline bool onednn_is_reference(const char* impl_info) {
  return std::string(impl_info).rfind("ref", 0) == 0;
}

}  // namespace slim
