// MobileNetV1 exactly as PaddleSlim builds it (paddleslim/models/mobilenet.py): layer and
// parameter names, width multiplier int(channels * scale), MSRA-uniform (KaimingUniform) conv
// and fc weights. PaddleSlim's fc applies softmax; the zoo returns the raw logits.
#include <cmath>

#include "families.h"
#include "slim/zoo/arch.h"

namespace slim::zoo_detail {

namespace {

/// PaddleSlim's conv_bn_layer: conv without bias, BN named "<name>_bn", ReLU.
std::string conv_bn(ZooBuilder& b, const std::string& x, const std::string& name, int64_t filters,
                    int64_t k, int64_t stride, int64_t pad, int64_t groups) {
  int64_t cin = b.channels(x);
  SLIM_CHECK(filters > 0, b.model(), ": layer '", name, "' with no channels");
  int64_t fan_in = cin / groups * k * k;
  auto w = b.param(name + "_weights", b.kaiming_uniform({filters, cin / groups, k, k}, fan_in));
  auto y = b.conv(x, name, w, "", stride, pad, groups);
  y = b.batch_norm(y, name + "_bn", name + "_bn");
  return b.relu(y, name + "_relu");
}

/// Channels after PaddleSlim's width multiplier: Python's int() truncates.
int64_t scaled(int64_t channels, double scale) {
  return static_cast<int64_t>(static_cast<double>(channels) * scale);
}

}  // namespace

Graph zoo_mobilenet_v1(const ZooOptions& o) {
  MobileNetV1Arch arch;
  arch.stem = scaled(32, o.scale);
  struct Block {
    const char* name;
    int64_t in, out, stride;
  };
  // Spatial sizes on 224x224: 112 (conv1), 112, 56, 56, 28, 28, 14 x 6, 7, 7.
  const Block blocks[] = {
      {"conv2_1", 32, 64, 1},   {"conv2_2", 64, 128, 2},  {"conv3_1", 128, 128, 1},
      {"conv3_2", 128, 256, 2}, {"conv4_1", 256, 256, 1}, {"conv4_2", 256, 512, 2},
      {"conv5_1", 512, 512, 1}, {"conv5_2", 512, 512, 1}, {"conv5_3", 512, 512, 1},
      {"conv5_4", 512, 512, 1}, {"conv5_5", 512, 512, 1}, {"conv5_6", 512, 1024, 2},
      {"conv6", 1024, 1024, 1}};
  // depthwise_separable: the depthwise conv has int(in * scale) filters in as many groups.
  for (const auto& blk : blocks)
    arch.blocks.push_back(
        {blk.name, scaled(blk.in, o.scale), scaled(blk.out, o.scale), blk.stride, 3});
  return build_mobilenet_v1(arch, o);
}

}  // namespace slim::zoo_detail

namespace slim {

Graph build_mobilenet_v1(const MobileNetV1Arch& arch, const ZooOptions& o) {
  using zoo_detail::conv_bn;
  ZooBuilder b(arch.model, o);
  auto y = conv_bn(b, b.image(), "conv1", arch.stem, 3, 2, 1, 1);
  for (const auto& blk : arch.blocks) {
    const int64_t in = b.channels(y);
    SLIM_CHECK(blk.dw > 0, b.model(), ": layer '", blk.name, "_dw' with no channels");
    const int64_t dw = blk.dw > in ? blk.dw - blk.dw % in : in;
    y = conv_bn(b, y, blk.name + "_dw", dw, blk.kernel, blk.stride, (blk.kernel - 1) / 2, in);
    y = conv_bn(b, y, blk.name + "_sep", blk.pw, 1, 1, 0, 1);
  }
  // KaimingUniform over the fc's inputs.
  return b.finish(b.classifier(y, "pool", arch.fc, arch.fc + "_weights", arch.fc + "_offset",
                               o.classes,
                               [](int64_t in) { return std::sqrt(6.0 / static_cast<double>(in)); }));
}

}  // namespace slim
