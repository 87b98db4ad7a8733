#include "slim/analysis/flops.h"

#include <gtest/gtest.h>

#include "../test_util.h"
#include "slim/exec/infer_shapes.h"
#include "slim/zoo/zoo.h"

namespace slim {
namespace {

using Ints = std::vector<int64_t>;

/// conv (no bias) + BN + ReLU, PaddleSlim's conv_bn_layer.
std::string conv_bn(test::GraphBuilder& b, const std::string& x, const std::string& name,
                    int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t pad,
                    int64_t group) {
  auto w = b.init(name + "_weights", at::randn({cout, cin / group, k, k}) * 0.1);
  auto c = b.node("Conv", {x, w},
                  {{"kernel_shape", Ints{k, k}},
                   {"strides", Ints{stride, stride}},
                   {"pads", Ints{pad, pad, pad, pad}},
                   {"group", group}},
                  name);
  auto bn = b.node("BatchNormalization",
                   {c, b.init(name + "_bn_scale", at::ones({cout})),
                    b.init(name + "_bn_offset", at::zeros({cout})),
                    b.init(name + "_bn_mean", at::zeros({cout})),
                    b.init(name + "_bn_variance", at::ones({cout}))},
                   {}, name + "_bn");
  return b.node("Relu", {bn}, {}, name + "_relu");
}

/// PaddleSlim's MobileNetV1 from the zoo (paddleslim/models/mobilenet.py), scale 1.
Graph mobilenet_v1(int64_t c, int64_t h, int64_t w, int64_t classes) {
  ZooOptions o;
  o.input = {c, h, w};
  o.classes = classes;
  Graph g = zoo_build("mobilenet_v1", o);
  infer_shapes(g);
  return g;
}

TEST(Flops, PaddleSlimMobileNetV1CheckValues) {
  // Check values from PaddleSlim's analysis (shared/REFERENCE.md).
  EXPECT_EQ(count_flops(mobilenet_v1(1, 28, 28, 10)).total, 10896832);
  EXPECT_EQ(count_flops(mobilenet_v1(3, 16, 16, 1000)).total, 5110528);
}

TEST(Flops, SixConvBnCheckValue) {
  test::GraphBuilder b;
  auto y = b.input("x", {kDynamicDim, 3, 16, 16});
  int64_t cin = 3;
  for (int i = 0; i < 6; ++i) {
    y = conv_bn(b, y, "conv" + std::to_string(i), cin, 8, 3, 1, 1, 1);
    cin = 8;
  }
  b.output(y);
  Graph g = b.build();
  infer_shapes(g);
  FlopsReport r = count_flops(g);
  EXPECT_EQ(r.total, 792576);
  EXPECT_EQ(r.per_node.size(), 6u);
  EXPECT_EQ(r.per_node[0].flops, 16 * 16 * 8 * 27);
  // With all ops: + BN and ReLU, one per element each (6 layers x 2 x 8x16x16).
  EXPECT_EQ(count_flops(g, true).total, 792576 + 6 * 2 * 8 * 16 * 16);
}

TEST(Flops, GemmMatMulAndPoolingConventions) {
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 4, 8, 8});
  auto p = b.node("MaxPool", {x}, {{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}});
  auto a = b.node("AveragePool", {p}, {{"kernel_shape", Ints{3, 3}}, {"pads", Ints{1, 1, 1, 1}}});
  auto f = b.node("Flatten", {a});
  // Gemm with transB (PyTorch Linear): K = 64, N = 5.
  auto g1 = b.node("Gemm", {f, b.init("w", at::randn({5, 64})), b.init("c", at::zeros({5}))},
                   {{"transB", int64_t{1}}});
  // MatMul over a sequence: [N, 3, 5] x [5, 7] -> 3 rows of K*N per sample.
  auto r = b.node("Reshape", {b.node("Concat", {g1, g1, g1}, {{"axis", int64_t{1}}}),
                              b.init("shape", at::tensor({-1, 3, 5}, at::kLong))});
  auto m = b.node("MatMul", {r, b.init("w2", at::randn({5, 7}))});
  b.output(m);
  Graph g = b.build();
  infer_shapes(g);
  EXPECT_EQ(count_flops(g).total, 64 * 5 + 3 * 5 * 7);
  // Pools: max 4x4x4 windows of 2x2, avg 4x4x4 windows of 3x3.
  EXPECT_EQ(count_flops(g, true).total, 64 * 5 + 3 * 5 * 7 + 64 * 4 + 64 * 9);
}

TEST(Flops, GroupedAndStridedConv) {
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 8, 9, 9});
  auto y = b.node("Conv", {x, b.init("w", at::randn({16, 2, 3, 3})), b.init("bias", at::zeros({16}))},
                  {{"group", int64_t{4}}, {"strides", Ints{2, 2}}});
  b.output(y);
  Graph g = b.build();
  infer_shapes(g);
  // out 4x4, 16 filters of 2x3x3, bias not counted.
  EXPECT_EQ(count_flops(g).total, 4 * 4 * 16 * 18);
}

TEST(Flops, ConvTransposeCountsEveryInputTimesItsOutputBlock) {
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 8, 5, 5});
  // 8 input channels in 2 groups, 3 outputs per group, 3x3 kernel, stride 2 -> 6 x 11 x 11.
  auto y = b.node("ConvTranspose", {x, b.init("w", at::randn({8, 3, 3, 3}))},
                  {{"group", int64_t{2}}, {"strides", Ints{2, 2}}});
  auto z = b.node("PRelu", {y, b.init("slope", at::full({6, 1, 1}, 0.25))});
  b.output(z);
  Graph g = b.build();
  infer_shapes(g);
  ASSERT_EQ(*g.shape_of(y), (Ints{kDynamicDim, 6, 11, 11}));
  // Each of the 8*5*5 inputs meets 3 filters of 3x3 weights.
  EXPECT_EQ(count_flops(g).total, 8 * 5 * 5 * 3 * 9);
  // With --all the PRelu adds its elements.
  EXPECT_EQ(count_flops(g, true).total, 8 * 5 * 5 * 3 * 9 + 6 * 11 * 11);
}

TEST(Flops, MissingShapesAreAnError) {
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 3, 8, 8});
  b.output(b.node("Conv", {x, b.init("w", at::randn({4, 3, 3, 3}))}, {}, "c1"));
  Graph g = b.build();
  try {
    count_flops(g);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("c1"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace slim
