#pragma once
// Inference convolution on oneDNN (Debian's libdnnl.so.2, the same library
// Debian's libtorch links) with weights reordered once into the layout the chosen kernel wants,
// primitives cached per input shape, activations in NHWC (ATen channels_last) so consecutive convs
// never reorder them, and the element-wise work of the nodes after the conv (activations, a
// residual Add, SiLU) done by the primitive as it writes its output. ATen's own path (at::convolution) creates
// the primitive and reorders input, weights and output on every call: on MobileNetV1 at 28x28 that
// overhead was most of the run time at batch 1 and kept pruned layers from getting faster.
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "slim/exec/kernel.h"

namespace slim {

/// An element-wise activation an int8 convolution applies before rounding its output.
struct FusedActivation {
  enum class Kind { kNone, kRelu, kLeakyRelu, kClip } kind = Kind::kNone;
  float alpha = 0;  ///< LeakyRelu slope, Clip lower bound
  float beta = 0;   ///< Clip upper bound
  bool active() const { return kind != Kind::kNone; }
};

/// The activation of node `act` if it can be fused into a preceding int8 Conv: Relu, LeakyRelu,
/// and Clip whose bounds are attributes or scalar initializers of `g`. kNone otherwise.
FusedActivation fusable_activation(const Graph& g, const Node& act);

/// One element-wise step a float convolution applies to its output before writing it (a oneDNN
/// post-op), standing for a node after the Conv.
struct PostOp {
  enum class Kind {
    kRelu,
    kLeakyRelu,    ///< alpha: slope
    kClip,         ///< [alpha, beta]
    kHardSwish,    ///< x * clip(x / 6 + 1/2, 0, 1)
    kHardSigmoid,  ///< clip(alpha * x + beta, 0, 1)
    kSigmoid,
    kSwish,  ///< x * sigmoid(x): Sigmoid and Mul (SiLU)
    kSum,    ///< + a tensor of the output's shape: a residual Add
  } kind = Kind::kRelu;
  float alpha = 0;
  float beta = 0;
};

/// The post-op an element-wise node reading a conv's output (as its first input) amounts to:
/// the activations of fusable_activation, HardSwish, HardSigmoid and Sigmoid. None otherwise.
std::optional<PostOp> elementwise_post_op(const Graph& g, const Node& n);

/// `ops` applied in order with ATen, as the nodes they stand for compute them; kSum adds `sum`
/// (broadcasting). Used when oneDNN does not run the conv, or cannot take the post-ops.
at::Tensor apply_post_ops(at::Tensor x, const std::vector<PostOp>& ops, const at::Tensor& sum);

/// One Conv node's oneDNN state. Not thread-safe (neither is the Executor).
class OneDnnConv {
 public:
  explicit OneDnnConv(const Node& node);
  ~OneDnnConv();
  OneDnnConv(const OneDnnConv&) = delete;
  OneDnnConv& operator=(const OneDnnConv&) = delete;

  /// Runs the conv of `c` with `post` applied to its output and returns true, or returns false
  /// without touching `c` when this call does not qualify (not a 2-D float conv, autograd
  /// needed, or oneDNN would only offer its reference kernel for this shape): the caller then
  /// runs the ATen kernel and apply_post_ops(). A kSum post-op adds `sum`; when `sum` has the
  /// output's shape and layout and nothing else holds its storage, the output is written into
  /// it (`sum` is then moved from). Post-ops oneDNN cannot fuse for a shape (or a `sum` of another shape) run after the
  /// conv with ATen. The weights (and bias) are reordered again only when their tensor or its
  /// version counter changes, so training the same graph in between stays correct.
  bool run(KernelContext& c, const std::vector<PostOp>& post, at::Tensor& sum);
  bool run(KernelContext& c) {
    at::Tensor none;
    return run(c, {}, none);
  }

 private:
  struct Plan;
  const Node& node_;
  std::map<std::vector<int64_t>, std::unique_ptr<Plan>> plans_;  ///< by input dims + post-ops
  std::vector<int64_t> key_;  ///< the lookup key, kept to reuse its buffer
};

/// One Gemm node's oneDNN state: a float Gemm (transA=0, alpha=1, bias C of shape [N] or [1, N]
/// with beta=1, or none) run as oneDNN's inner product with B reordered once. ATen's addmm goes
/// to OpenBLAS, which copies all of B into its packed layout on every call: for a classifier at
/// batch 1 (1280 x 1000) that copy was a quarter of MNASNet's run time.
class OneDnnGemm {
 public:
  explicit OneDnnGemm(const Node& node);
  ~OneDnnGemm();
  OneDnnGemm(const OneDnnGemm&) = delete;
  OneDnnGemm& operator=(const OneDnnGemm&) = delete;

  /// Runs the Gemm of `c` and returns true, or returns false without touching `c` when this call
  /// does not qualify (see above; autograd needed; oneDNN's reference kernel only): the caller
  /// then runs the ATen kernel. B is reordered again when its tensor or version changes.
  bool run(KernelContext& c);

 private:
  struct Plan;
  const Node& node_;
  std::map<int64_t, std::unique_ptr<Plan>> plans_;  ///< by rows of A
};

/// Whether the oneDNN convolution path is available on this machine's CPU build.
bool onednn_conv_available();

}  // namespace slim
