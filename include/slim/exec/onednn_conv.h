#pragma once
// Inference convolution on oneDNN (Debian's libdnnl.so.2, the same library
// Debian's libtorch links) with weights reordered once into the layout the chosen kernel wants,
// primitives cached per input shape, activations in NHWC (ATen channels_last) so consecutive convs
// never reorder them, and an optional fused activation. ATen's own path (at::convolution) creates
// the primitive and reorders input, weights and output on every call: on MobileNetV1 at 28x28 that
// overhead was most of the run time at batch 1 and kept pruned layers from getting faster.
#include <map>
#include <memory>
#include <vector>

#include "slim/exec/kernel.h"

namespace slim {

/// An element-wise activation fused into the convolution's output.
struct FusedActivation {
  enum class Kind { kNone, kRelu, kLeakyRelu, kClip } kind = Kind::kNone;
  float alpha = 0;  ///< LeakyRelu slope, Clip lower bound
  float beta = 0;   ///< Clip upper bound
  bool active() const { return kind != Kind::kNone; }
  /// Applies the activation with ATen (used when the oneDNN path is not taken).
  at::Tensor apply(const at::Tensor& x) const;
};

/// The activation of node `act` if it can be fused into a preceding Conv: Relu, LeakyRelu, and
/// Clip whose bounds are attributes or scalar initializers of `g`. kNone otherwise.
FusedActivation fusable_activation(const Graph& g, const Node& act);

/// One Conv node's oneDNN state. Not thread-safe (neither is the Executor).
class OneDnnConv {
 public:
  explicit OneDnnConv(const Node& node);
  ~OneDnnConv();
  OneDnnConv(const OneDnnConv&) = delete;
  OneDnnConv& operator=(const OneDnnConv&) = delete;

  /// Runs the conv of `c` with `act` applied to its output and returns true, or returns false
  /// without touching `c` when this call does not qualify (not a 2-D float conv, autograd
  /// needed, or oneDNN would only offer its reference kernel for this shape): the caller then
  /// runs the ATen kernel. The weights (and bias) are reordered again only when their tensor or
  /// its version counter changes, so training the same graph in between stays correct.
  bool run(KernelContext& c, const FusedActivation& act);

 private:
  struct Plan;
  const Node& node_;
  std::map<std::vector<int64_t>, std::unique_ptr<Plan>> plans_;  ///< by input dims + activation
};

/// Whether the oneDNN convolution path is available on this machine's CPU build.
bool onednn_conv_available();

}  // namespace slim
