#pragma once
/// The model zoo: classification networks built in code as Graphs (ONNX op types, opset 13), at
/// any input shape and class count, with freshly initialised weights. The PaddleSlim models
/// (mobilenet_v1, mobilenet_v2, resnet34, resnet50) use PaddleSlim's layer and parameter names
/// and structure so that FLOPs, pruning names and sensitivities line up with its tables.
///
/// Every graph has one input "image" [N, C, H, W] (N is the symbolic dim "N") and one output
/// "logits" [N, classes] (raw fc output, no softmax). BatchNormalization stays a node so the
/// model can be trained; value_info holds every intermediate shape, so count_flops works
/// without a shape-inference run. Fully connected layers are Gemm with weights [in, out]
/// (Paddle's fc layout, no transB).
#include <cstdint>
#include <string>
#include <vector>

#include "slim/ir/graph.h"

namespace slim {

struct ZooOptions {
  /// Per-sample input shape C,H,W (the batch stays symbolic).
  std::vector<int64_t> input{1, 28, 28};
  /// Number of classes: the width of the last fc layer. Must be > 0.
  int64_t classes = 10;
  /// Width multiplier, as PaddleSlim applies it (channels = int(channels * scale)). Only the
  /// MobileNets have one; the other models require 1.
  double scale = 1.0;
  /// Seed of the generator all weights are drawn from, in build order: the same seed gives
  /// bit-identical weights.
  uint64_t seed = 0;
  /// false: weights are allocated but not drawn (their values are undefined). For structure-only
  /// uses that never run the graph: shapes, FLOPs, parameter counts of many candidates (NAS
  /// limits), at a fraction of the cost for large networks.
  bool draw_weights = true;
};

/// Builds the model `name` (one of zoo_names()). Unknown names, classes <= 0, scale <= 0 (or
/// != 1 for a model without a width multiplier), an input that is not C,H,W with positive dims,
/// or an input too small for the network's kernels and strides are slim::Error naming the
/// problem. The MobileNets and ResNets pad every window, so any H, W >= 1 builds (late maps
/// shrink to 1x1, as in PaddleSlim's 16x16 check values); LeNet needs H, W >= 12.
Graph zoo_build(const std::string& name, const ZooOptions& options);

/// The zoo's model names, in a fixed order.
std::vector<std::string> zoo_names();

/// One line describing the model `name` (its structure and origin); unknown names are errors.
std::string zoo_describe(const std::string& name);

}  // namespace slim
