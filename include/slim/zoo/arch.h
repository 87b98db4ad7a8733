#pragma once
/// The zoo's network families as data: a fixed zoo model is one instance of its family's
/// architecture struct, and NAS search spaces decode token vectors into others. Every builder
/// here follows the zoo's conventions (zoo.h): one input "image" [N, C, H, W], one output
/// "logits" [N, classes], BatchNormalization kept, value_info filled, weights drawn in build
/// order from ZooOptions::seed. Every window is padded as "SAME" ((k - 1) / 2 on each side), so
/// a map never shrinks below 1x1.
#include <cstdint>
#include <string>
#include <vector>

#include "slim/ir/graph.h"
#include "slim/zoo/zoo.h"

namespace slim {

/// MobileNetV2: a 3x3 stride-2 stem + ReLU6, groups of inverted residual units (1x1 expand +
/// ReLU6, k x k depthwise + ReLU6 carrying the stride, 1x1 linear; every unit but a group's
/// first adds its input), a 1x1 conv + ReLU6, global average pool, fc. Layer names are
/// PaddleSlim's: conv1_1, conv<g+2>_<unit>_{expand,dwise,linear}, conv<groups+2>,
/// fc<groups+3>.
struct MobileNetV2Arch {
  struct Group {
    int64_t expansion, channels, repeats, stride, kernel;
  };
  std::string model = "mobilenet_v2";
  int64_t stem = 32;
  std::vector<Group> groups;
  int64_t last = 1280;
  /// PaddleSlim builds the 1x1 expand conv even at expansion 1; torchvision (and the MobileNetV2
  /// paper) has none there.
  bool expand_at_expansion_1 = true;
};
Graph build_mobilenet_v2(const MobileNetV2Arch& arch, const ZooOptions& options);

/// MobileNetV1: a 3x3 stride-2 stem, depthwise-separable blocks (k x k depthwise conv carrying
/// the stride, 1x1 pointwise conv), each conv followed by BN and ReLU, global average pool, fc.
/// A block's depthwise conv has one group per input channel and `dw` output channels rounded
/// down to a multiple of the input channels (at least one per group: PaddleSlim's NAS rule).
struct MobileNetV1Arch {
  struct Block {
    std::string name;  ///< convs "<name>_dw", "<name>_sep"
    int64_t dw, pw, stride, kernel;
  };
  std::string model = "mobilenet_v1";
  int64_t stem = 32;
  std::vector<Block> blocks;
  std::string fc = "fc7";  ///< parameters "<fc>_weights", "<fc>_offset"
};
Graph build_mobilenet_v1(const MobileNetV1Arch& arch, const ZooOptions& options);

/// ResNet: a k x k stem conv + BN + ReLU (optionally a 3x3 stride-2 max pool), stages of
/// residual blocks res<stage+2><a, b, ...> (basic: two 3x3 convs; bottleneck: 1x1, 3x3 carrying
/// the stride, 1x1 to 4x the width) with a projection shortcut where the shape changes and a
/// ReLU after each Add, global average pool, fc "fc_0".
struct ResNetArch {
  struct Stage {
    int64_t filters, blocks, stride;
  };
  std::string model = "resnet50";
  int64_t stem_filters = 64, stem_kernel = 7;
  bool max_pool = true;
  bool bottleneck = true;
  std::vector<Stage> stages;
};
Graph build_resnet(const ResNetArch& arch, const ZooOptions& options);

}  // namespace slim
