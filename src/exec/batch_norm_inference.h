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

 private:
  std::vector<float> scale_, shift_;  ///< buffers reused between calls
};

}  // namespace slim
