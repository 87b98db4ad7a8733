// MobileNetV2 as PaddleSlim builds it (paddleslim/models/mobilenet_v2.py): inverted residual
// units "conv<i>_<j>" of expand (1x1) -> dwise (3x3) -> linear (1x1), ReLU6 as Clip(0, 6), a
// residual Add in every unit but the first of a group, last conv "conv9", fc "fc10".
//
// Like PaddleSlim (and unlike torchvision) the t = 1 group still has its 1x1 expand conv, so
// FLOPs and parameter names match PaddleSlim's. Initialisation follows Paddle's defaults for
// conv2d (MSRA normal) and fc (Xavier uniform), with one correction: Paddle's conv2d default
// takes fan_in = k*k*C_in even for a depthwise conv, which makes the depthwise weights
// sqrt(C_in) times too small; the zoo uses fan_in = k*k*C_in/group as MSRA intends.
#include <cmath>

#include "families.h"
#include "slim/zoo/arch.h"

namespace slim::zoo_detail {

namespace {

std::string conv_bn(ZooBuilder& b, const std::string& x, const std::string& name, int64_t filters,
                    int64_t k, int64_t stride, int64_t pad, int64_t groups, bool act) {
  int64_t cin = b.channels(x);
  SLIM_CHECK(filters > 0, b.model(), ": layer '", name, "' with no channels");
  int64_t fan_in = cin / groups * k * k;
  auto w = b.param(name + "_weights", b.kaiming_normal({filters, cin / groups, k, k}, fan_in));
  auto y = b.conv(x, name, w, "", stride, pad, groups);
  y = b.batch_norm(y, name + "_bn", name + "_bn");
  return act ? b.relu6(y, name + "_relu6") : y;
}

std::string inverted_residual_unit(ZooBuilder& b, const std::string& x, const std::string& name,
                                   const MobileNetV2Arch::Group& grp, int64_t stride,
                                   bool shortcut, bool expand) {
  int64_t expanded = b.channels(x) * grp.expansion;
  auto y = expand ? conv_bn(b, x, name + "_expand", expanded, 1, 1, 0, 1, true) : x;
  y = conv_bn(b, y, name + "_dwise", expanded, grp.kernel, stride, (grp.kernel - 1) / 2, expanded,
              true);
  y = conv_bn(b, y, name + "_linear", grp.channels, 1, 1, 0, 1, false);
  return shortcut ? b.add(x, y, name + "_add") : y;
}

int64_t scaled(int64_t channels, double scale) {
  return static_cast<int64_t>(static_cast<double>(channels) * scale);
}

}  // namespace

Graph zoo_mobilenet_v2(const ZooOptions& o) {
  MobileNetV2Arch arch;
  arch.stem = scaled(32, o.scale);
  const MobileNetV2Arch::Group groups[] = {{1, 16, 1, 1, 3}, {6, 24, 2, 2, 3},  {6, 32, 3, 2, 3},
                                           {6, 64, 4, 2, 3}, {6, 96, 3, 1, 3},  {6, 160, 3, 2, 3},
                                           {6, 320, 1, 1, 3}};
  for (auto grp : groups) {
    grp.channels = scaled(grp.channels, o.scale);
    arch.groups.push_back(grp);
  }
  // PaddleSlim widens the last conv only for scale > 1.
  arch.last = o.scale > 1.0 ? scaled(1280, o.scale) : 1280;
  return build_mobilenet_v2(arch, o);
}

}  // namespace slim::zoo_detail

namespace slim {

Graph build_mobilenet_v2(const MobileNetV2Arch& arch, const ZooOptions& o) {
  using zoo_detail::conv_bn;
  ZooBuilder b(arch.model, o);
  auto y = conv_bn(b, b.image(), "conv1_1", arch.stem, 3, 2, 1, 1, true);
  int i = 1;
  for (const auto& grp : arch.groups) {
    ++i;
    for (int64_t j = 1; j <= grp.repeats; ++j) {
      std::string name = "conv" + std::to_string(i) + "_" + std::to_string(j);
      y = zoo_detail::inverted_residual_unit(b, y, name, grp, j == 1 ? grp.stride : 1, j > 1,
                                             grp.expansion != 1 || arch.expand_at_expansion_1);
    }
  }
  y = conv_bn(b, y, "conv" + std::to_string(i + 1), arch.last, 1, 1, 0, 1, true);
  const std::string fc = "fc" + std::to_string(i + 2);
  // Xavier uniform.
  return b.finish(b.classifier(y, "pool", fc, fc + "_weights", fc + "_offset", o.classes,
                               [&](int64_t in) {
                                 return std::sqrt(6.0 / static_cast<double>(in + o.classes));
                               }));
}

}  // namespace slim
