#include "slim/nas/search_space.h"

#include <functional>
#include <set>

#include "slim/zoo/arch.h"

namespace slim {

namespace {

using List = std::vector<int64_t>;

/// Tracks the map size through strides so that a stride-2 position on a 1x1 map runs at 1.
struct MapSize {
  int64_t h, w;
  int64_t stride(int64_t s) {
    if (h == 1 && w == 1) return 1;
    h = (h + s - 1) / s;  // "SAME": ceil(in / stride)
    w = (w + s - 1) / s;
    return s;
  }
};

void check_options(const std::string& space, const ZooOptions& o) {
  SLIM_CHECK(o.input.size() == 3, space, ": input must be C,H,W, got ", o.input.size(), " dims");
  for (auto d : o.input) SLIM_CHECK(d > 0, space, ": input dims must be positive, got ", d);
  SLIM_CHECK(o.classes > 0, space, ": classes must be positive, got ", o.classes);
  SLIM_CHECK(o.scale == 1.0, space, ": search spaces have no width multiplier (scale ", o.scale,
             ")");
}

// ---- mobilenet_v2: 25 tokens ------------------------------------------------------------------
const List kV2Head = {3, 4, 8, 12, 16, 24, 32};
const List kV2Filters[6] = {{3, 4, 8, 12, 16, 24, 32, 48},
                            {8, 12, 16, 24, 32, 48, 64, 80},
                            {16, 24, 32, 48, 64, 80, 96, 128},
                            {24, 32, 48, 64, 80, 96, 128, 144, 160, 192},
                            {32, 48, 64, 80, 96, 128, 144, 160, 192, 224},
                            {64, 80, 96, 128, 144, 160, 192, 224, 256, 320, 384, 512}};
const List kV2Expansion = {1, 2, 3, 4, 6};
const List kRepeats = {1, 2, 3, 4, 5, 6};
const List kKernels = {3, 5};

class MobileNetV2Space : public SearchSpace {
 public:
  std::string name() const override { return "mobilenet_v2"; }
  std::string describe() const override {
    return "PaddleSlim's MobileNetV2 space (25 tokens): channels of the first unit, then six "
           "groups of (expansion, channels, repeats, kernel) with strides 2,2,2,1,2,1";
  }
  Tokens init_tokens() const override {
    return {4, 4, 5, 1, 0, 4, 4, 2, 0, 4, 4, 3, 0, 4, 5, 2, 0, 4, 7, 2, 0, 4, 9, 0, 0};
  }
  Tokens range_table() const override {
    return {7, 5, 8, 6, 2, 5, 8, 6, 2, 5, 8, 6, 2, 5, 10, 6, 2, 5, 10, 6, 2, 5, 12, 6, 2};
  }
  Graph build(const Tokens& t, const ZooOptions& o) const override {
    check_options(name(), o);
    check_tokens(t);
    MobileNetV2Arch arch;
    arch.model = "nas_mobilenet_v2";
    arch.expand_at_expansion_1 = false;
    MapSize map{o.input[1], o.input[2]};
    map.stride(2);  // the stem
    arch.groups.push_back({1, kV2Head[t[0]], 1, map.stride(1), 3});
    const int64_t strides[6] = {2, 2, 2, 1, 2, 1};
    for (int g = 0; g < 6; ++g) {
      const int64_t* k = &t[1 + 4 * g];
      arch.groups.push_back({kV2Expansion[k[0]], kV2Filters[g][k[1]], kRepeats[k[2]],
                             map.stride(strides[g]), kKernels[k[3]]});
    }
    return build_mobilenet_v2(arch, o);
  }

 protected:
  // A unit depends on the channels before it (the head or the previous group's) and its
  // group's expansion, channels and kernel; two repeats give the repeated units' configuration.
  std::vector<CoverGroup> cover_groups() const override {
    std::vector<CoverGroup> groups;
    for (size_t g = 0; g < 6; ++g)
      groups.push_back({{g == 0 ? size_t{0} : 2 + 4 * (g - 1), 1 + 4 * g, 2 + 4 * g, 4 + 4 * g},
                        {{3 + 4 * g, 1}}});
    return groups;
  }
};

// ---- mobilenet_v1: 29 tokens ------------------------------------------------------------------
const List kV1Filters[9] = {
    {3, 4, 8, 12, 16, 24, 32, 48},
    {8, 12, 16, 24, 32, 48, 64, 80},
    {16, 24, 32, 48, 64, 80, 96, 128, 144, 160},
    {24, 32, 48, 64, 80, 96, 128, 144, 160, 192},
    {32, 48, 64, 80, 96, 128, 144, 160, 192, 224, 256, 320},
    {64, 80, 96, 128, 144, 160, 192, 224, 256, 320, 384},
    {64, 80, 96, 128, 144, 160, 192, 224, 256, 320, 384, 512, 1024, 1048},
    {128, 144, 160, 192, 224, 256, 320, 384, 512, 576, 640, 704, 768},
    {160, 192, 224, 256, 320, 384, 512, 640, 768, 832, 1024, 1048}};

class MobileNetV1Space : public SearchSpace {
 public:
  std::string name() const override { return "mobilenet_v1"; }
  std::string describe() const override {
    return "PaddleSlim's MobileNetV1 space (29 tokens): stem channels, six (depthwise, "
           "pointwise, kernel) blocks with strides 1,2,1,2,1,2, a repeat count of the next "
           "block, then a stride-2 and a stride-1 block; ReLU after every conv";
  }
  Tokens init_tokens() const override {
    return {6, 6, 6, 0, 6, 7, 0, 7, 6, 0, 6, 10, 0, 10, 8, 0, 8, 11, 0, 4,
            11, 8, 0, 8, 10, 0, 10, 10, 0};
  }
  Tokens range_table() const override {
    return {7, 8, 8, 2, 8, 10, 2, 10, 10, 2, 10, 12, 2, 12, 11, 2, 11, 14, 2, 6,
            14, 13, 2, 13, 12, 2, 12, 12, 2};
  }
  Graph build(const Tokens& t, const ZooOptions& o) const override {
    check_options(name(), o);
    check_tokens(t);
    MobileNetV1Arch arch;
    arch.model = "nas_mobilenet_v1";
    arch.stem = kV2Head[t[0]];  // the same head list as mobilenet_v2
    MapSize map{o.input[1], o.input[2]};
    map.stride(2);
    int block = 2;
    // (token of the depthwise filters, its list, pointwise list, stride): the pointwise list of
    // one block is the depthwise list of the next.
    auto add = [&](size_t pos, int dw_list, int64_t stride) {
      arch.blocks.push_back({"conv" + std::to_string(block++), kV1Filters[dw_list][t[pos]],
                             kV1Filters[dw_list + 1][t[pos + 1]], map.stride(stride),
                             kKernels[t[pos + 2]]});
    };
    const int64_t strides[6] = {1, 2, 1, 2, 1, 2};
    for (int b = 0; b < 6; ++b) add(1 + 3 * b, b, strides[b]);
    for (int64_t r = 0; r < kRepeats[t[19]]; ++r) add(20, 6, 1);
    add(23, 7, 2);
    // The last block's depthwise and pointwise widths both come from the ninth list.
    arch.blocks.push_back({"conv" + std::to_string(block++), kV1Filters[8][t[26]],
                           kV1Filters[8][t[27]], map.stride(1), kKernels[t[28]]});
    arch.fc = "fc" + std::to_string(block);
    return build_mobilenet_v1(arch, o);
  }

 protected:
  // A block depends on the pointwise channels before it and its own depthwise, pointwise and
  // kernel tokens; two repeats of the repeated block give its second configuration.
  std::vector<CoverGroup> cover_groups() const override {
    std::vector<CoverGroup> groups;
    for (size_t b = 0; b < 6; ++b)
      groups.push_back({{b == 0 ? size_t{0} : 2 + 3 * (b - 1), 1 + 3 * b, 2 + 3 * b, 3 + 3 * b}, {}});
    groups.push_back({{17, 20, 21, 22}, {{19, 1}}});
    groups.push_back({{21, 23, 24, 25}, {}});
    groups.push_back({{24, 26, 27, 28}, {}});
    return groups;
  }
};

// ---- resnet: 8 tokens -------------------------------------------------------------------------
const List kResFilters[4] = {{48, 64, 96, 128, 160, 192, 224},
                             {64, 96, 128, 160, 192, 256, 320},
                             {128, 160, 192, 256, 320, 384},
                             {192, 256, 384, 512, 640}};
const List kResRepeats[4] = {{2, 3, 4, 5, 6},
                             {2, 3, 4, 5, 6, 7},
                             {2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24},
                             {2, 3, 4, 5, 6, 7}};

class ResNetSpace : public SearchSpace {
 public:
  std::string name() const override { return "resnet"; }
  std::string describe() const override {
    return "PaddleSlim's ResNet space (8 tokens): (width, bottleneck blocks) of four stages, "
           "5x5 stride-2 stem of the first stage's width, stage strides 1,2,2,2";
  }
  Tokens init_tokens() const override { return {1, 1, 2, 2, 3, 4, 3, 1}; }
  Tokens range_table() const override { return {7, 5, 7, 6, 6, 13, 5, 6}; }
  Graph build(const Tokens& t, const ZooOptions& o) const override {
    check_options(name(), o);
    check_tokens(t);
    ResNetArch arch;
    arch.model = "nas_resnet";
    arch.stem_filters = kResFilters[0][t[0]];
    arch.stem_kernel = 5;
    arch.max_pool = false;
    arch.bottleneck = true;
    MapSize map{o.input[1], o.input[2]};
    map.stride(2);
    for (int s = 0; s < 4; ++s)
      arch.stages.push_back(
          {kResFilters[s][t[2 * s]], kResRepeats[s][t[2 * s + 1]], map.stride(s == 0 ? 1 : 2)});
    return build_resnet(arch, o);
  }

 protected:
  // The stem and the first stage depend on the first width; a later stage's first block on
  // its own width and the previous one's (every stage has at least two blocks).
  std::vector<CoverGroup> cover_groups() const override {
    return {{{0}, {}}, {{0, 2}, {}}, {{2, 4}, {}}, {{4, 6}, {}}};
  }
};

const std::vector<std::pair<std::string, std::function<std::unique_ptr<SearchSpace>()>>>&
registry() {
  static const std::vector<std::pair<std::string, std::function<std::unique_ptr<SearchSpace>()>>>
      r = {{"mobilenet_v2", [] { return std::make_unique<MobileNetV2Space>(); }},
           {"mobilenet_v1", [] { return std::make_unique<MobileNetV1Space>(); }},
           {"resnet", [] { return std::make_unique<ResNetSpace>(); }}};
  return r;
}

}  // namespace

void SearchSpace::check_tokens(const Tokens& t) const {
  const Tokens range = range_table();
  SLIM_CHECK(t.size() == range.size(), name(), " takes ", range.size(), " tokens, got ",
             t.size(), " (", tokens_to_string(t), ")");
  for (size_t i = 0; i < t.size(); ++i)
    SLIM_CHECK(t[i] >= 0 && t[i] < range[i], name(), ": token ", i, " is ", t[i],
               ", outside [0, ", range[i], ")");
}

std::vector<Tokens> SearchSpace::cover_tokens() const {
  const Tokens range = range_table();
  std::set<Tokens> out;
  for (const auto& grp : cover_groups()) {
    Tokens t = init_tokens();
    for (const auto& [pos, value] : grp.fixed) t[pos] = value;
    // Odometer over the group's positions.
    for (size_t pos : grp.positions) t[pos] = 0;
    while (true) {
      out.insert(t);
      size_t i = 0;
      for (; i < grp.positions.size(); ++i) {
        const size_t pos = grp.positions[i];
        if (++t[pos] < range[pos]) break;
        t[pos] = 0;
      }
      if (i == grp.positions.size()) break;
    }
  }
  return {out.begin(), out.end()};
}

std::vector<std::string> search_space_names() {
  std::vector<std::string> names;
  for (const auto& [n, make] : registry()) names.push_back(n);
  return names;
}

std::unique_ptr<SearchSpace> search_space_make(const std::string& name) {
  std::string known;
  for (const auto& [n, make] : registry()) {
    if (n == name) return make();
    known += (known.empty() ? "" : ", ") + n;
  }
  SLIM_FAIL("unknown search space '", name, "'; available: ", known);
}

}  // namespace slim
