#include "slim/passes/fold_batch_norm.h"

#include <gtest/gtest.h>

#include "slim/exec/executor.h"
#include "slim/exec/infer_shapes.h"
#include "slim/zoo/zoo.h"
#include "test_util.h"

namespace slim {
namespace {

using Ints = std::vector<int64_t>;

at::Tensor run(Graph& g, const at::Tensor& x) {
  Executor ex(g);
  at::NoGradGuard ng;
  return ex.run({x})[0];
}

TEST(FoldBatchNorm, MobileNetV1FoldsEveryConvAndKeepsTheFunction) {
  Graph g = test::mnist_mobilenet_v1();
  test::randomize_batch_norm(g, 4);
  Graph f = g.clone();
  EXPECT_EQ(fold_batch_norm(f), 27);
  f.verify();
  EXPECT_EQ(f.op_histogram().count("BatchNormalization"), 0u);
  EXPECT_FALSE(f.is_initializer("conv1_bn_mean"));
  at::Tensor x = at::randn({3, 1, 28, 28});
  at::Tensor ref = run(g, x), got = run(f, x);
  EXPECT_LT((ref - got).abs().max().item<double>() / ref.abs().max().item<double>(), 1e-5);
  EXPECT_EQ(fold_batch_norm(f), 0);  // idempotent
}

TEST(FoldBatchNorm, DoesNotFireWhenTheConvOutputIsReadElsewhere) {
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 2, 4, 4});
  auto c = b.node("Conv", {x, b.init("w", at::randn({3, 2, 1, 1}))}, {}, "conv");
  auto bn = b.node("BatchNormalization",
                   {c, b.init("s", at::rand({3}) + 0.5), b.init("o", at::randn({3})),
                    b.init("m", at::randn({3})), b.init("v", at::rand({3}) + 0.5)},
                   {}, "bn");
  auto sum = b.node("Add", {bn, c}, {}, "sum");  // the raw conv output is used too
  // A second conv sharing the first one's weight.
  auto c2 = b.node("Conv", {x, "w"}, {}, "conv2");
  auto bn2 = b.node("BatchNormalization",
                    {c2, b.init("s2", at::rand({3}) + 0.5), b.init("o2", at::randn({3})),
                     b.init("m2", at::randn({3})), b.init("v2", at::rand({3}) + 0.5)},
                    {}, "bn2");
  b.output(sum);
  b.output(bn2);
  Graph g = b.build();
  Graph f = g.clone();
  EXPECT_EQ(fold_batch_norm(f), 0);
  EXPECT_EQ(f.nodes.size(), g.nodes.size());
}

TEST(FoldBatchNorm, AddsABiasWhenTheConvHasNone) {
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 2, 5, 5});
  auto c = b.node("Conv", {x, b.init("w", at::randn({4, 2, 3, 3}))}, {{"pads", Ints{1, 1, 1, 1}}},
                  "conv");
  auto bn = b.node("BatchNormalization",
                   {c, b.init("s", at::rand({4}) + 0.5), b.init("o", at::randn({4})),
                    b.init("m", at::randn({4})), b.init("v", at::rand({4}) + 0.5)},
                   {{"epsilon", 1e-3f}}, "bn");
  b.output(bn);
  Graph g = b.build();
  Graph f = g.clone();
  ASSERT_EQ(fold_batch_norm(f), 1);
  ASSERT_EQ(f.nodes.size(), 1u);
  EXPECT_EQ(f.nodes[0].outputs[0], bn);  // output name kept
  EXPECT_EQ(f.nodes[0].inputs.size(), 3u);
  at::Tensor xin = at::randn({2, 2, 5, 5});
  at::Tensor ref = run(g, xin), got = run(f, xin);
  EXPECT_LT((ref - got).abs().max().item<double>(), 1e-5 * ref.abs().max().item<double>());
}

TEST(FoldBatchNorm, FoldedTensorsAreTheDoubleFormulaRoundedOnce) {
  // W' = W * s and b' = (b - mean) * s + offset with s = scale / sqrt(var + eps), each computed
  // in double and rounded once to the weights' type; grouped and pointwise weights alike.
  for (int64_t group : {1, 8}) {
    SCOPED_TRACE("group " + std::to_string(group));
    test::GraphBuilder b;
    auto x = b.input("x", {kDynamicDim, 8, 6, 6});
    at::manual_seed(group);
    const at::Tensor w = at::randn({16, 8 / group, 3, 3}), bias = at::randn({16});
    const at::Tensor sc = at::rand({16}) + 0.5, off = at::randn({16}), mean = at::randn({16}),
                     var = at::rand({16}) + 0.1;
    auto c = b.node("Conv", {x, b.init("w", w), b.init("b", bias)},
                    {{"group", group}, {"pads", Ints{1, 1, 1, 1}}}, "conv");
    b.output(b.node("BatchNormalization",
                    {c, b.init("s", sc), b.init("o", off), b.init("m", mean), b.init("v", var)},
                    {{"epsilon", 1e-3f}}, "bn"));
    Graph f = b.build();
    ASSERT_EQ(fold_batch_norm(f), 1);
    const at::Tensor s =
        sc.to(at::kDouble) / (var.to(at::kDouble) + static_cast<double>(1e-3f)).sqrt();
    EXPECT_TRUE(at::equal(f.initializers.at("w"),
                          (w.to(at::kDouble) * s.view({16, 1, 1, 1})).to(at::kFloat)));
    EXPECT_TRUE(at::equal(
        f.initializers.at("b"),
        ((bias.to(at::kDouble) - mean.to(at::kDouble)) * s + off.to(at::kDouble)).to(at::kFloat)));
  }
}

}  // namespace
}  // namespace slim
