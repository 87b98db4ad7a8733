// ResNet-34 and ResNet-50 as PaddleSlim builds them (paddleslim/models/resnet.py): conv1 7x7/2
// + "bn_conv1" + ReLU, max pool 3x3/2 pad 1, stages "res2".."res5" of blocks "a", "b", ...
// whose convs are "<block>_branch2a|b|c" (BN "bn<block minus 'res'>_branch2a", e.g.
// "bn2a_branch2a"), a projection shortcut "<block>_branch1" where the shape changes (and, for
// ResNet-34, in res2a too, as PaddleSlim's is_first does), global average pool and the fc.
//
// PaddleSlim 1.x (fluid) adds a ReLU after each residual Add; its 2.x port dropped it
// (paddle.add without act), which is a bug: the zoo keeps the ReLU. The fc is left unnamed in
// PaddleSlim, so its parameters get Paddle's generated names "fc_0.w_0" and "fc_0.b_0".
// Weights: conv MSRA normal (Paddle's conv2d default), fc U(-1/sqrt(in), 1/sqrt(in)), bias 0.
#include <cmath>

#include "families.h"
#include "slim/zoo/arch.h"

namespace slim::zoo_detail {

namespace {

/// PaddleSlim's conv_bn_layer: padding (k - 1) / 2, no bias, BN named from the conv.
std::string conv_bn(ZooBuilder& b, const std::string& x, const std::string& name, int64_t filters,
                    int64_t k, int64_t stride, bool act) {
  int64_t cin = b.channels(x);
  auto w = b.param(name + "_weights", b.kaiming_normal({filters, cin, k, k}, cin * k * k));
  auto y = b.conv(x, name, w, "", stride, (k - 1) / 2, 1);
  std::string bn = name == "conv1" ? "bn_conv1" : "bn" + name.substr(3);
  y = b.batch_norm(y, bn, bn);
  return act ? b.relu(y, name + "_relu") : y;
}

std::string shortcut(ZooBuilder& b, const std::string& x, int64_t filters, int64_t stride,
                     bool is_first, const std::string& name) {
  if (b.channels(x) != filters || stride != 1 || is_first)
    return conv_bn(b, x, name, filters, 1, stride, false);
  return x;
}

std::string basic_block(ZooBuilder& b, const std::string& x, int64_t filters, int64_t stride,
                        bool is_first, const std::string& name) {
  auto y = conv_bn(b, x, name + "_branch2a", filters, 3, stride, true);
  y = conv_bn(b, y, name + "_branch2b", filters, 3, 1, false);
  auto s = shortcut(b, x, filters, stride, is_first, name + "_branch1");
  return b.relu(b.add(s, y, name + "_add"), name + "_relu");
}

std::string bottleneck_block(ZooBuilder& b, const std::string& x, int64_t filters, int64_t stride,
                             const std::string& name) {
  auto y = conv_bn(b, x, name + "_branch2a", filters, 1, 1, true);
  y = conv_bn(b, y, name + "_branch2b", filters, 3, stride, true);
  y = conv_bn(b, y, name + "_branch2c", filters * 4, 1, 1, false);
  auto s = shortcut(b, x, filters * 4, stride, false, name + "_branch1");
  return b.relu(b.add(s, y, name + "_add"), name + "_relu");
}

}  // namespace

Graph zoo_resnet(const ZooOptions& o, int depth) {
  SLIM_ASSERT(depth == 34 || depth == 50, "zoo: resnet depth ", depth);
  ResNetArch arch;
  arch.model = "resnet" + std::to_string(depth);
  arch.bottleneck = depth >= 50;
  arch.stages = {{64, 3, 1}, {128, 4, 2}, {256, 6, 2}, {512, 3, 2}};
  return build_resnet(arch, o);
}

}  // namespace slim::zoo_detail

namespace slim {

Graph build_resnet(const ResNetArch& arch, const ZooOptions& o) {
  using namespace zoo_detail;
  ZooBuilder b(arch.model, o);
  auto y = conv_bn(b, b.image(), "conv1", arch.stem_filters, arch.stem_kernel, 2, true);
  if (arch.max_pool) y = b.max_pool(y, "pool1", 3, 2, 1);
  for (size_t stage = 0; stage < arch.stages.size(); ++stage) {
    const auto& st = arch.stages[stage];
    for (int64_t i = 0; i < st.blocks; ++i) {
      SLIM_CHECK(i < 26, arch.model, ": stage ", stage + 1, " has ", st.blocks,
                 " blocks; names run from 'a' to 'z'");
      std::string name = "res" + std::to_string(stage + 2) + static_cast<char>('a' + i);
      int64_t stride = i == 0 ? st.stride : 1;
      y = arch.bottleneck
              ? bottleneck_block(b, y, st.filters, stride, name)
              : basic_block(b, y, st.filters, stride, stage == 0 && i == 0, name);
    }
  }
  return b.finish(b.classifier(y, "pool5", "fc_0", "fc_0.w_0", "fc_0.b_0", o.classes,
                               [](int64_t in) { return 1.0 / std::sqrt(double(in)); }));
}

}  // namespace slim
