#include "slim/prune/channel_groups.h"

#include <gtest/gtest.h>

#include "slim/exec/infer_shapes.h"
#include "slim/prune/prune_channels.h"
#include "slim/zoo/zoo.h"
#include "test_util.h"

namespace slim {
namespace {

using Ints = std::vector<int64_t>;
using test::error_of;

std::string conv(test::GraphBuilder& b, const std::string& x, const std::string& name, int64_t cin,
                 int64_t cout, int64_t group = 1) {
  auto w = b.init(name + "_w", at::randn({cout, cin / group, 3, 3}) * 0.3);
  return b.node("Conv", {x, w}, {{"pads", Ints{1, 1, 1, 1}}, {"group", group}}, name);
}

const ChannelGroup& group_with(const ChannelAnalysis& an, const std::string& source) {
  for (const auto& g : an.groups)
    for (const auto& s : g.sources)
      if (s == source) return g;
  throw std::runtime_error("no group with " + source);
}

TEST(ChannelGroups, MobileNetV1HasOneGroupPerPointwiseConv) {
  ZooOptions o;
  o.input = {1, 28, 28};
  o.classes = 10;
  Graph g = zoo_build("mobilenet_v1", o);
  auto an = analyze_channel_groups(g);
  ASSERT_EQ(an.groups.size(), 14u);  // conv1 + 13 "_sep"; depthwise convs follow their input
  for (const auto& gr : an.groups) {
    EXPECT_TRUE(gr.prunable) << gr.reason;
    EXPECT_EQ(gr.sources.size(), 1u);
  }
  EXPECT_EQ(an.groups[0].sources[0], "conv1_weights");
  EXPECT_EQ(an.group_of(g, "conv2_1_sep_weights").channels, 64);
  // conv2_1_sep's channels reach: its own weight and BN (1 + 4), the next depthwise conv and its
  // BN (1 + 4), and the next pointwise conv's input axis (1).
  int reached = 0;
  const int id = an.group_of(g, "conv2_1_sep_weights").id;
  for (const auto& c : an.cuts)
    for (const auto& s : c.map.segments)
      if (s.group == id) ++reached;
  EXPECT_EQ(reached, 11);
  auto err = error_of([&] { an.group_of(g, "conv2_2_dw_weights"); });
  EXPECT_NE(err.find("conv2_1_sep"), std::string::npos) << err;  // names the producer to prune
  EXPECT_NE(error_of([&] { an.group_of(g, "fc7_weights"); }).find("not a Conv weight"),
            std::string::npos);
  EXPECT_EQ(prunable_params(g).size(), 14u);
}

TEST(ChannelGroups, UnsafeGroupsAreSkippedWithTheReason) {
  at::manual_seed(2);
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 4, 5, 5});
  // Channel shuffle (ShuffleNet): Reshape to [N, 2, 4, H, W], Transpose, Reshape back.
  auto s = conv(b, x, "shuffled", 4, 8);
  auto r1 = b.node("Reshape", {s, b.init("shape5", at::tensor(Ints{0, 2, 4, 5, 5}))}, {}, "r1");
  auto t = b.node("Transpose", {r1}, {{"perm", Ints{0, 2, 1, 3, 4}}}, "t");
  auto r2 = b.node("Reshape", {t, b.init("shape4", at::tensor(Ints{0, 8, 5, 5}))}, {}, "r2");
  auto after = conv(b, r2, "after_shuffle", 8, 4);
  // A grouped (not depthwise) conv reading a group.
  auto gsrc = conv(b, after, "grouped_src", 4, 8);
  auto grouped = conv(b, gsrc, "grouped", 8, 8, 2);
  // A conv whose output is a graph output.
  auto out = conv(b, grouped, "head", 8, 6);
  // An op the analysis does not follow: Gather picking channels.
  auto lrn_src = conv(b, x, "lrn_src", 4, 4);
  auto lrn = b.node("Gather", {lrn_src, b.init("pick", at::tensor(Ints{0, 2, 1}))},
                    {{"axis", int64_t{1}}}, "lrn");
  b.output(out);
  b.output(lrn);
  Graph g = b.build();
  infer_shapes(g);
  auto an = analyze_channel_groups(g);
  auto reason = [&](const std::string& w) {
    const auto& gr = group_with(an, w);
    EXPECT_FALSE(gr.prunable) << w;
    return gr.reason;
  };
  EXPECT_NE(reason("shuffled_w").find("Reshape node 'r1'"), std::string::npos)
      << reason("shuffled_w");
  EXPECT_NE(reason("grouped_src_w").find("group=2"), std::string::npos);
  EXPECT_NE(reason("head_w").find("graph output 'head_out'"), std::string::npos);
  EXPECT_NE(reason("lrn_src_w").find("Gather node 'lrn'"), std::string::npos);
  EXPECT_TRUE(group_with(an, "after_shuffle_w").prunable);

  PruneOptions o;
  o.ratios = {{"after_shuffle_w", 0.5}};
  Graph p = g.clone();
  auto report = prune_channels(p, o);
  EXPECT_EQ(report.skipped.size(), 4u);
  EXPECT_EQ(p.initializers.at("grouped_src_w").size(1), 2);
  auto err = error_of([&] {
    PruneOptions bad;
    bad.ratios = {{"shuffled_w", 0.5}};
    Graph h = g.clone();
    prune_channels(h, bad);
  });
  EXPECT_NE(err.find("cannot be pruned"), std::string::npos) << err;
}

TEST(ChannelGroups, AddOfMisalignedRangesIsRefused) {
  at::manual_seed(3);
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 2, 4, 4});
  auto a = conv(b, x, "a", 2, 4);
  auto c = conv(b, x, "c", 2, 4);
  auto cat = b.node("Concat", {a, c}, {{"axis", int64_t{1}}}, "cat");  // 8 channels: a | c
  auto whole = conv(b, x, "whole", 2, 8);
  auto sum = b.node("Add", {cat, whole}, {}, "sum");
  auto y = conv(b, sum, "y", 8, 3);
  b.output(y);
  Graph g = b.build();
  infer_shapes(g);
  auto an = analyze_channel_groups(g);
  EXPECT_FALSE(group_with(an, "whole_w").prunable);
  EXPECT_NE(group_with(an, "a_w").reason.find("Add node 'sum'"), std::string::npos)
      << group_with(an, "a_w").reason;
}

}  // namespace
}  // namespace slim
