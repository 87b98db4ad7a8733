#pragma once
// Internal to src/exec: what the float and int8 oneDNN paths share.
#include <omp.h>

#include <algorithm>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <unordered_map>

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

/// OpenMP threads for one primitive over `batch` images of `macs` multiply-accumulates in all: all
/// of the executor's (--threads) from batch 8 on, where oneDNN splits the batch; below, one per
/// `macs_per_thread`, at least 1, as a second thread does not pay for the fork and join on the
/// shortest convs. The thresholds (100k float, 200k int8 MACs per thread) were measured at batch
/// 1 on 2 threads of an Intel Xeon (AVX-512) over MobileNetV1 at 1x28x28 and torchvision's
/// MNASNet, MobileNetV3, EfficientNet-B1, DenseNet-169 and ResNet-50 at 3x64x64: against the
/// earlier 1M and 2M, MobileNetV1 0.66 -> 0.43 ms (float) and 0.33 -> 0.21 ms (int8), MNASNet
/// 1.05-1.30 -> 0.80 ms, the rest equal or faster. oneDNN fixes a kernel's thread count when
/// the primitive is created, so a plan is created and run under the same count (OmpThreads).
inline int onednn_threads_for(int64_t batch, int64_t macs, int64_t macs_per_thread) {
  const int64_t most = std::max(1, omp_get_max_threads());
  if (batch >= 8) return static_cast<int>(most);
  return static_cast<int>(std::clamp<int64_t>(macs / macs_per_thread, 1, most));
}

/// onednn_threads_for a conv (or inner product) with weights `w` and output dims
/// [N, C_out, spatial...]: w.numel() multiply-accumulates per output pixel of one image.
inline int onednn_conv_threads(const at::Tensor& w, const std::vector<int64_t>& out_dims,
                               int64_t macs_per_thread) {
  int64_t macs = w.numel();
  for (size_t d = 0; d < out_dims.size(); ++d)
    if (d != 1) macs *= out_dims[d];
  return onednn_threads_for(out_dims[0], macs, macs_per_thread);
}

/// Sets OpenMP's thread count for the parallel regions started in its scope and restores it.
class OmpThreads {
 public:
  explicit OmpThreads(int n) : saved_(omp_get_max_threads()) {
    if (n != saved_) omp_set_num_threads(n);
  }
  ~OmpThreads() {
    if (omp_get_max_threads() != saved_) omp_set_num_threads(saved_);
  }
  OmpThreads(const OmpThreads&) = delete;
  OmpThreads& operator=(const OmpThreads&) = delete;

 private:
  int saved_;
};

/// Reorders weights at `data`, laid out as `user` describes (the tensor's own strides), into
/// `packed` (a primitive's preferred layout) and waits for it.
inline void reorder_weights(const dnnl::memory::desc& user, void* data, dnnl::memory& packed) {
  dnnl::memory from(user, onednn_engine(), data);
  dnnl::reorder(from, packed).execute(onednn_stream(), from, packed);
  onednn_stream().wait();
}

/// A primitive's arguments, made once: each call only points them at its tensors.
struct BoundArgs {
  std::unordered_map<int, dnnl::memory> args;
  /// Makes the memory objects once (weights: the plan's reordered copy).
  void make(const dnnl::memory::desc& src, const dnnl::memory& weights,
            const dnnl::memory::desc& dst, const dnnl::memory::desc& bias) {
    auto& e = onednn_engine();
    args = {{DNNL_ARG_SRC, dnnl::memory(src, e, DNNL_MEMORY_NONE)},
            {DNNL_ARG_WEIGHTS, weights},
            {DNNL_ARG_DST, dnnl::memory(dst, e, DNNL_MEMORY_NONE)}};
    if (!bias.is_zero()) args.emplace(DNNL_ARG_BIAS, dnnl::memory(bias, e, DNNL_MEMORY_NONE));
  }
  void bind(void* src, void* dst, void* bias) {
    args.at(DNNL_ARG_SRC).set_data_handle(src);
    args.at(DNNL_ARG_DST).set_data_handle(dst);
    if (bias) args.at(DNNL_ARG_BIAS).set_data_handle(bias);
  }
};

/// True when oneDNN picked its reference (unoptimised) implementation: ATen is faster then.
inline bool onednn_is_reference(const char* impl_info) {
  return std::string(impl_info).rfind("ref", 0) == 0;
}

}  // namespace slim
