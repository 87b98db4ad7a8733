#include "slim/zoo/zoo.h"

#include <cmath>
#include <functional>

#include "families.h"

namespace slim {

namespace {

struct ZooEntry {
  const char* name;
  const char* description;
  bool has_scale;  ///< takes a width multiplier
  std::function<Graph(const ZooOptions&)> build;
};

/// The registry, in the order `slim zoo --list` prints it.
const std::vector<ZooEntry>& zoo_entries() {
  using namespace zoo_detail;
  static const std::vector<ZooEntry> entries = {
      {"lenet", "LeNet-5 for 28x28 (conv 5x5 pad 2 x6, conv 5x5 x16, fc 120, 84), from 12x12 up",
       false, zoo_lenet},
      {"mobilenet_v1", "PaddleSlim's MobileNetV1 (conv1, 13 depthwise-separable blocks, fc7)", true,
       zoo_mobilenet_v1},
      {"mobilenet_v2", "PaddleSlim's MobileNetV2 (inverted residuals conv2..conv8, conv9, fc10)",
       true, zoo_mobilenet_v2},
      {"resnet34", "PaddleSlim's ResNet-34 (basic blocks 3,4,6,3)", false,
       [](const ZooOptions& o) { return zoo_resnet(o, 34); }},
      {"resnet50", "PaddleSlim's ResNet-50 (bottleneck blocks 3,4,6,3)", false,
       [](const ZooOptions& o) { return zoo_resnet(o, 50); }},
  };
  return entries;
}

const ZooEntry& zoo_find(const std::string& name) {
  for (const auto& e : zoo_entries())
    if (name == e.name) return e;
  std::string names;
  for (const auto& n : zoo_names()) names += (names.empty() ? "" : ", ") + n;
  SLIM_FAIL("unknown zoo model '", name, "'; available: ", names);
}

/// "1,28,28": the way --input spells a shape (shape_to_string would print -1 as "N").
std::string join_dims(const std::vector<int64_t>& dims) {
  std::string s;
  for (auto d : dims) s += (s.empty() ? "" : ",") + std::to_string(d);
  return s;
}

}  // namespace

std::vector<std::string> zoo_names() {
  std::vector<std::string> names;
  for (const auto& e : zoo_entries()) names.push_back(e.name);
  return names;
}

std::string zoo_describe(const std::string& name) { return zoo_find(name).description; }

Graph zoo_build(const std::string& name, const ZooOptions& o) {
  const ZooEntry& e = zoo_find(name);
  SLIM_CHECK(o.input.size() == 3, name, ": input must be C,H,W (3 dims; the batch is added), got ",
             o.input.size(), " dim(s) '", join_dims(o.input), "'");
  for (auto d : o.input)
    SLIM_CHECK(d > 0, name, ": input dims must be positive, got '", join_dims(o.input), "'");
  SLIM_CHECK(o.classes > 0, name, ": classes must be positive, got ", o.classes);
  SLIM_CHECK(std::isfinite(o.scale) && o.scale > 0, name, ": scale must be positive, got ",
             o.scale);
  SLIM_CHECK(e.has_scale || o.scale == 1.0, name, " has no width multiplier: scale must be 1, got ",
             o.scale);
  return e.build(o);
}

}  // namespace slim
