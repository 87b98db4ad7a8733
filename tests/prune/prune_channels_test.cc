#include "slim/prune/prune_channels.h"

#include <gtest/gtest.h>

#include "slim/analysis/flops.h"
#include "slim/analysis/model_stats.h"
#include "slim/exec/executor.h"
#include "slim/exec/infer_shapes.h"
#include "slim/exec/kernel.h"
#include "slim/zoo/zoo.h"
#include "test_util.h"

namespace slim {
namespace {

using Ints = std::vector<int64_t>;
using test::error_of;

at::Tensor run(Graph& g, const at::Tensor& x) {
  Executor ex(g);
  at::NoGradGuard ng;
  return ex.run({x})[0];
}

/// Really pruning and zeroing the same filters (lazy) must compute the same function: every
/// coupled weight was cut consistently. Returns the pruned graph.
Graph expect_prune_matches_lazy(const Graph& g, PruneOptions o, const Ints& input_shape) {
  Graph real = g.clone(), lazy = g.clone();
  auto report = prune_channels(real, o);
  EXPECT_FALSE(report.pruned.empty());
  o.lazy = true;
  prune_channels(lazy, o);
  real.verify();
  at::manual_seed(5);
  at::Tensor x = at::randn(input_shape);
  Graph orig = g.clone();
  at::Tensor y_orig = run(orig, x), y_real = run(real, x), y_lazy = run(lazy, x);
  EXPECT_EQ(y_real.sizes(), y_orig.sizes());
  const double scale = y_lazy.abs().max().item<double>() + 1e-6;
  EXPECT_LT((y_real - y_lazy).abs().max().item<double>() / scale, 1e-4);
  EXPECT_GT((y_orig - y_lazy).abs().max().item<double>() / scale, 1e-4)
      << "pruning changed nothing";
  EXPECT_LT(count_params(real).count, count_params(g).count);
  return real;
}

TEST(PrunedCount, RoundHalfToEvenAndAlign) {
  EXPECT_EQ(pruned_count(64, 0.3), 19);  // 19.2
  EXPECT_EQ(pruned_count(10, 0.25), 2);  // 2.5 -> 2 (half to even)
  EXPECT_EQ(pruned_count(14, 0.25), 4);  // 3.5 -> 4
  EXPECT_EQ(pruned_count(256, 0.18333320), 47);
  EXPECT_EQ(pruned_count(64, 0.0), 0);
  EXPECT_EQ(pruned_count(4, 0.9), 3);       // at least one channel stays
  EXPECT_EQ(pruned_count(64, 0.3, 8), 16);  // keeps 45 -> 48
  EXPECT_EQ(pruned_count(64, 0.5, 8), 32);
  EXPECT_EQ(pruned_count(12, 0.5, 8), 4);    // keeps 6 -> 8
  EXPECT_EQ(pruned_count(6, 0.5, 8), 0);     // smaller than align: untouched
  EXPECT_EQ(pruned_count(64, 0.95, 8), 56);  // at least align channels stay
  EXPECT_NE(error_of([] { pruned_count(8, 1.0); }).find("[0, 1)"), std::string::npos);
}

TEST(Importance, CriteriaOnHandMadeFilters) {
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 1, 2, 2});
  // Filters (1x1x2x2): f0 = [1,-1,0,0], f1 = [2,0,0,0], f2 = [0.5,0.5,0.5,0.5].
  at::Tensor w = at::tensor({1.f, -1.f, 0.f, 0.f, 2.f, 0.f, 0.f, 0.f, .5f, .5f, .5f, .5f})
                     .reshape({3, 1, 2, 2});
  auto c = b.node("Conv", {x, b.init("w", w)}, {}, "conv");
  auto bn = b.node("BatchNormalization",
                   {c, b.init("s", at::tensor({-3.f, 0.5f, 2.f})), b.init("o", at::zeros({3})),
                    b.init("m", at::zeros({3})), b.init("v", at::ones({3}))},
                   {}, "bn");
  b.output(bn);
  Graph g = b.build();
  auto l1 = filter_importance(g, "w", Criterion::kL1Norm);
  EXPECT_EQ(l1, (std::vector<double>{2, 2, 2}));
  auto l2 = filter_importance(g, "w", Criterion::kL2Norm);
  EXPECT_DOUBLE_EQ(l2[0], std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(l2[1], 2);
  EXPECT_DOUBLE_EQ(l2[2], 1);
  EXPECT_EQ(filter_importance(g, "w", Criterion::kL0Norm), (std::vector<double>{2, 1, 4}));
  // FPGM: sum of distances to the others. d01 = sqrt(1+1) , d02 = sqrt(.25+2.25+.25+.25),
  // d12 = sqrt(2.25+.25*3).
  const double d01 = std::sqrt(2.0), d02 = std::sqrt(3.0), d12 = std::sqrt(3.0);
  auto fpgm = filter_importance(g, "w", Criterion::kFpgm);
  EXPECT_NEAR(fpgm[0], d01 + d02, 1e-12);
  EXPECT_NEAR(fpgm[1], d01 + d12, 1e-12);
  EXPECT_NEAR(fpgm[2], d02 + d12, 1e-12);
  EXPECT_EQ(filter_importance(g, "w", Criterion::kBnScale), (std::vector<double>{3, 0.5, 2}));
  EXPECT_EQ(lowest_indices({2, 2, 2}, 2), (Ints{0, 1}));  // ties: lower index first
  EXPECT_EQ(lowest_indices({3, 0.5, 2}, 2), (Ints{1, 2}));
  EXPECT_EQ(criterion_from_string("geometry_median"), Criterion::kFpgm);
  EXPECT_NE(error_of([] { criterion_from_string("l3"); }).find("'l3'"), std::string::npos);
}

TEST(PruneChannels, MobileNetV1TutorialFlops) {
  Graph g = test::mnist_mobilenet_v1();
  ASSERT_EQ(count_flops(g).total, 10896832);
  PruneOptions o;
  o.ratios = {{"conv2_1_sep_weights", 0.3},
              {"conv2_2_sep_weights", 0.3},
              {"conv3_1_sep_weights", 0.20999995},
              {"conv3_2_sep_weights", 0.15296294},
              {"conv4_1_sep_weights", 0.18333320}};
  Graph p = g.clone();
  auto report = prune_channels(p, o);
  EXPECT_EQ(count_flops(p).total, 9588167);
  ASSERT_EQ(report.pruned.size(), 5u);
  EXPECT_TRUE(report.skipped.empty());
  // The depthwise conv after conv2_1_sep follows it: 64 - 19 = 45 filters and groups.
  EXPECT_EQ(p.initializers.at("conv2_1_sep_weights").size(0), 45);
  EXPECT_EQ(p.initializers.at("conv2_2_dw_weights").size(0), 45);
  EXPECT_EQ(p.find_node("conv2_2_dw")->i("group"), 45);
  EXPECT_EQ(p.initializers.at("conv2_2_sep_weights").size(1), 45);
  EXPECT_EQ(p.initializers.at("conv2_1_sep_bn_variance").size(0), 45);
  EXPECT_EQ(report.unaligned.size(), 5u);

  Graph q = g.clone();
  o.ratios = {{"conv3_1_sep_weights", 0.3},
              {"conv3_2_sep_weights", 0.3},
              {"conv4_1_sep_weights", 0.22400936}};
  prune_channels(q, o);
  EXPECT_EQ(count_flops(q).total, 9777980);

  // --align 8 leaves multiples of 8 and says nothing is unaligned.
  Graph r = g.clone();
  o.align = 8;
  auto rep = prune_channels(r, o);
  EXPECT_TRUE(rep.unaligned.empty());
  for (const auto& pg : rep.pruned) EXPECT_EQ(pg.kept % 8, 0) << pg.master;
}

TEST(PruneChannels, MobileNetV1PruneMatchesLazyForEveryCriterion) {
  Graph g = test::mnist_mobilenet_v1();
  test::randomize_batch_norm(g, 11);
  for (auto c : {Criterion::kL1Norm, Criterion::kL2Norm, Criterion::kFpgm, Criterion::kBnScale}) {
    SCOPED_TRACE(criterion_name(c));
    PruneOptions o;
    o.criterion = c;
    o.ratios = {{"conv1_weights", 0.25}, {"conv2_2_sep_weights", 0.5}, {"conv6_sep_weights", 0.3}};
    Graph p = expect_prune_matches_lazy(g, o, {2, 1, 28, 28});
    EXPECT_EQ(p.initializers.at("fc7_weights").size(0), 1024 - 307);  // 0.3*1024 = 307.2
  }
}

TEST(PruneChannels, ResNetResidualAddsTieGroups) {
  ZooOptions zo;
  zo.input = {3, 32, 32};
  zo.classes = 10;
  Graph g = zoo_build("resnet34", zo);
  test::randomize_batch_norm(g, 11);
  auto an = analyze_channel_groups(g);
  // The stage's shortcut conv and every block's last conv write into the same sum.
  const auto& grp = an.group_of(g, "res3a_branch1_weights");
  EXPECT_EQ(grp.id, an.group_of(g, "res3b_branch2b_weights").id);
  EXPECT_EQ(grp.id, an.group_of(g, "res3a_branch2b_weights").id);
  EXPECT_NE(grp.id, an.group_of(g, "res3a_branch2a_weights").id);
  EXPECT_EQ(grp.sources.front(), "res3a_branch2b_weights");
  for (const auto& gr : an.groups) EXPECT_TRUE(gr.prunable) << gr.sources[0] << ": " << gr.reason;

  PruneOptions o;
  o.ratios = {{"res3a_branch1_weights", 0.5}, {"res2b_branch2a_weights", 0.3}};
  Graph p = expect_prune_matches_lazy(g, o, {2, 3, 32, 32});
  EXPECT_EQ(p.initializers.at("res3d_branch2b_weights").size(0), 64);
  EXPECT_EQ(p.initializers.at("res4a_branch1_weights").size(1), 64);

  o.ratios = {{"res3a_branch1_weights", 0.5}, {"res3b_branch2b_weights", 0.3}};
  auto err = error_of([&] {
    Graph h = g.clone();
    prune_channels(h, o);
  });
  EXPECT_NE(err.find("coupled"), std::string::npos) << err;
}

TEST(PruneChannels, ClearErrorsBeforeAnythingChanges) {
  Graph g = test::mnist_mobilenet_v1();
  Graph before = g.clone();
  auto expect_error = [&](std::map<std::string, double> ratios, const std::string& needle) {
    PruneOptions o;
    o.ratios = ratios;
    auto err = error_of([&] { prune_channels(g, o); });
    EXPECT_NE(err.find(needle), std::string::npos) << err;
  };
  expect_error({{"conv2_1_sep_weights", 1.0}}, "[0, 1)");
  expect_error({{"conv2_1_sep_weights", -0.1}}, "-0.1");
  expect_error({{"conv2_1_sep_weights", 0.3}, {"nope", 0.1}}, "unknown param 'nope'");
  expect_error({{"conv1_bn_scale", 0.1}}, "not a Conv weight");
  expect_error({{"conv2_1_dw_weights", 0.1}}, "follow its input");
  for (const auto& [name, t] : before.initializers)
    EXPECT_TRUE(at::equal(t, g.initializers.at(name))) << name;
}

// ---- small graphs for the coupling rules ---------------------------------------------------

std::string conv(test::GraphBuilder& b, const std::string& x, const std::string& name, int64_t cin,
                 int64_t cout, int64_t k = 3, int64_t group = 1) {
  auto w = b.init(name + "_w", at::randn({cout, cin / group, k, k}) * 0.3);
  auto bias = b.init(name + "_b", at::randn({cout}) * 0.1);
  return b.node("Conv", {x, w, bias},
                {{"pads", Ints{k / 2, k / 2, k / 2, k / 2}}, {"group", group}}, name);
}

Graph prepared(test::GraphBuilder& b) {
  Graph g = b.build();
  infer_shapes(g);
  return g;
}

TEST(PruneChannels, ConcatSplitSqueezeExcitationFlattenGemm) {
  at::manual_seed(1);
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 3, 6, 6});
  auto a = b.node("Relu", {conv(b, x, "a", 3, 8)}, {}, "ra");
  auto c = b.node("Relu", {conv(b, x, "c", 3, 6)}, {}, "rc");
  auto cat = b.node("Concat", {a, x, c}, {{"axis", int64_t{1}}}, "cat");  // 8 + 3 + 6
  // Squeeze-excitation on `a`: the expand conv's output is multiplied into `a`, so the two are
  // one group.
  auto pooled = b.node("GlobalAveragePool", {a}, {}, "gap");
  auto red = b.node("Relu", {conv(b, pooled, "se_reduce", 8, 4, 1)}, {}, "se_relu");
  auto gate = b.node("Sigmoid", {conv(b, red, "se_expand", 4, 8, 1)}, {}, "se_gate");
  auto se = b.node("Mul", {a, gate}, {}, "se_mul");
  auto scaled =
      b.node("Mul", {se, b.init("chan_scale", at::rand({1, 8, 1, 1}) + 0.5)}, {}, "chan_mul");
  auto dw = conv(b, scaled, "dw", 8, 8, 3, 8);
  auto m = conv(b, cat, "m", 17, 12);
  auto split = b.node("Split", {m, b.init("sizes", at::tensor(Ints{5, 7}))}, {{"axis", int64_t{1}}},
                      "split");
  auto s1 = conv(b, "split_out", "s1", 5, 4);
  auto join = b.node("Concat", {dw, s1}, {{"axis", int64_t{1}}}, "join");  // 8 + 4
  auto flat = b.node("Flatten", {join}, {{"axis", int64_t{1}}}, "flat");
  auto fc =
      b.node("Gemm",
             {flat, b.init("fc_w", at::randn({12 * 36, 5}) * 0.05), b.init("fc_b", at::zeros({5}))},
             {}, "fc");
  b.output(fc);
  Graph g = b.build();
  // Split's first output is the builder's "split_out"; give it its second (unused) one.
  g.find_node("split")->outputs = {split, "split_rest"};
  infer_shapes(g);
  auto an = analyze_channel_groups(g);
  for (const auto& gr : an.groups) EXPECT_TRUE(gr.prunable) << gr.sources[0] << ": " << gr.reason;
  EXPECT_EQ(an.group_of(g, "a_w").id, an.group_of(g, "se_expand_w").id);

  PruneOptions o;
  o.ratios = {{"a_w", 0.5}, {"c_w", 0.5}, {"m_w", 0.25}, {"s1_w", 0.5}, {"se_reduce_w", 0.5}};
  Graph p = expect_prune_matches_lazy(g, o, {2, 3, 6, 6});
  EXPECT_EQ(p.initializers.at("m_w").size(1), 4 + 3 + 3);
  EXPECT_EQ(p.initializers.at("se_expand_w").size(0), 4);
  EXPECT_EQ(p.initializers.at("se_reduce_w").size(1), 4);
  EXPECT_EQ(p.initializers.at("chan_scale").size(1), 4);
  EXPECT_EQ(p.find_node("dw")->i("group"), 4);
  EXPECT_EQ(p.initializers.at("fc_w").size(0), (4 + 2) * 36);
  const Node* psplit = p.find_node("split");
  Ints sizes = to_int_vector(p.initializers.at(psplit->inputs[1]));
  EXPECT_EQ(sizes[0] + sizes[1], 9);  // 12 - 3
  EXPECT_EQ(p.initializers.at("s1_w").size(1), sizes[0]);
}

TEST(PruneChannels, PReluInstanceNormAndResizeFollowTheirChannels) {
  // conv -> InstanceNormalization -> PRelu (slope [C, 1, 1], as PyTorch exports it) -> Resize x2
  // -> conv: the norm's scale and bias and the slope lose the pruned channels too.
  at::manual_seed(2);
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 3, 6, 6});
  auto a = conv(b, x, "a", 3, 8);
  auto in = b.node("InstanceNormalization",
                   {a, b.init("in_scale", at::rand({8}) + 0.5), b.init("in_bias", at::randn({8}))},
                   {}, "in");
  auto pr = b.node("PRelu", {in, b.init("slope", at::rand({8, 1, 1}))}, {}, "prelu");
  auto up = b.node("Resize",
                   {pr, "", b.init("scales", at::tensor({1.f, 1.f, 2.f, 2.f}))},
                   {{"mode", std::string("nearest")}}, "up");
  b.output(conv(b, up, "head", 8, 4));
  Graph g = prepared(b);
  auto an = analyze_channel_groups(g);
  EXPECT_TRUE(an.group_of(g, "a_w").prunable) << an.group_of(g, "a_w").reason;

  PruneOptions o;
  o.ratios = {{"a_w", 0.5}};
  Graph p = expect_prune_matches_lazy(g, o, {2, 3, 6, 6});
  EXPECT_EQ(p.initializers.at("in_scale").size(0), 4);
  EXPECT_EQ(p.initializers.at("in_bias").size(0), 4);
  EXPECT_EQ(p.initializers.at("slope").size(0), 4);
  EXPECT_EQ(p.initializers.at("head_w").size(1), 4);
}

TEST(PruneChannels, ConvTransposeLosesTheInputChannelsItReads) {
  // conv -> Relu -> ConvTranspose (x2 upsampling) -> conv: pruning the first conv removes rows of
  // the transposed conv's weight [C_in, C_out, k, k]; its own 6 output channels stay.
  at::manual_seed(3);
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 3, 6, 6});
  auto a = b.node("Relu", {conv(b, x, "a", 3, 8)}, {}, "ra");
  auto up = b.node("ConvTranspose",
                   {a, b.init("up_w", at::randn({8, 6, 2, 2}) * 0.3), b.init("up_b", at::randn({6}))},
                   {{"strides", Ints{2, 2}}}, "up");
  b.output(conv(b, up, "head", 6, 4));
  Graph g = prepared(b);
  PruneOptions o;
  o.ratios = {{"a_w", 0.5}};
  Graph p = expect_prune_matches_lazy(g, o, {2, 3, 6, 6});
  EXPECT_EQ(p.initializers.at("up_w").sizes(), (Ints{4, 6, 2, 2}));
  EXPECT_EQ(p.initializers.at("up_b").size(0), 6);
  EXPECT_EQ(p.initializers.at("head_w").size(1), 6);
}

}  // namespace
}  // namespace slim
