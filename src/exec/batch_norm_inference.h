#pragma once
// Internal to src/exec: BatchNormalization in inference as one pass over the data.
#include <vector>

#include "slim/exec/onednn_conv.h"

namespace slim {

/// A float BatchNormalization node in inference (a BN that does not follow a conv, so
/// fold_batch_norm leaves it: DenseNet's BN -> ReLU -> Conv after each Concat) as a per-channel
/// scale and shift computed as ATen computes them (scale = gamma / sqrt(var + eps), shift =
/// beta - mean * scale), applied in one pass over NCHW or NHWC data with a following Relu,
/// LeakyRelu or Clip. ATen's batch_norm dispatches several ops on every call: 12 us a call at
/// DenseNet-169's sizes at batch 1, against 4 us here with the Relu.
class BatchNormInference {
 public:
  /// True when `post` holds only what run() can apply after the affine map.
  static bool supports(const PostOp& op);
  /// Runs the node of `c` then `post` and returns true, or returns false without touching `c`
  /// when this call does not qualify (training_mode, not 4-D float, parameters not float of one
  /// value per channel, autograd needed): the caller runs the kernel and apply_post_ops().
  bool run(KernelContext& c, const std::vector<PostOp>& post);
  /// The same on the channel concatenation of `parts` (c.in[0] absent): a Concat along channels
  /// whose only reader is this node, done in the same pass (DenseNet concatenates every earlier
  /// layer's output before each BN). Each output element is computed exactly as run() computes
  /// it on the concatenated tensor. Returns false as run() does, and when the parts are not 4-D
  /// float tensors of one layout (all NCHW or all NHWC) agreeing in every dim but the channels.
  bool run_concat(KernelContext& c, const std::vector<at::Tensor>& parts,
                  const std::vector<PostOp>& post);

 private:
  /// Checks everything but input 0 and fills scale_ and shift_ for `ch` channels.
  bool prepare(KernelContext& c, int64_t ch, const std::vector<PostOp>& post);
  std::vector<float> scale_, shift_;  ///< buffers reused between calls
};

}  // namespace slim
