#include "slim/passes/reset_head.h"

#include <gtest/gtest.h>

#include <cmath>

#include "slim/exec/executor.h"
#include "slim/exec/infer_shapes.h"
#include "test_util.h"

namespace slim {
namespace {

Graph classifier(bool trans_b, bool softmax) {
  test::GraphBuilder b;
  std::string x = b.input("x", {kDynamicDim, 3, 8, 8});
  std::string y = b.node("Flatten", {b.node("GlobalAveragePool", {x})});
  at::Tensor w = trans_b ? at::randn({1000, 3}) : at::randn({3, 1000});
  y = b.node("Gemm", {y, b.init("fc_w", w), b.init("fc_b", at::randn({1000}))},
             {{"transB", int64_t{trans_b}}}, "fc");
  if (softmax) y = b.node("Softmax", {y}, {{"axis", int64_t{1}}});
  b.output(y);
  Graph g = b.build();
  infer_shapes(g);
  return g;
}

TEST(ResetHead, ANewFinalLayerForTheDataClassesDrawnLikeNnLinear) {
  for (bool trans_b : {true, false}) {
    for (bool softmax : {false, true}) {
      SCOPED_TRACE(std::string("transB ") + (trans_b ? "1" : "0") + (softmax ? ", softmax" : ""));
      Graph g = classifier(trans_b, softmax);
      EXPECT_EQ(reset_head(g, 7, 3), "fc");
      const Node& fc = *g.find_node("fc");
      const at::Tensor& w = g.initializers.at(fc.inputs[1]);
      EXPECT_EQ(w.sizes(), trans_b ? (std::vector<int64_t>{7, 3}) : (std::vector<int64_t>{3, 7}));
      EXPECT_EQ(g.initializers.at(fc.inputs[2]).sizes(), (std::vector<int64_t>{7}));
      // nn.Linear's bound 1/sqrt(in features), in = 3.
      EXPECT_LE(w.abs().max().item<double>(), 1 / std::sqrt(3.0));
      EXPECT_EQ(g.initializers.count("fc_w"), 0u) << "the old weight, read by nothing, is gone";
      EXPECT_TRUE(g.trainable.count(fc.inputs[1]) && g.trainable.count(fc.inputs[2]));
      EXPECT_EQ(g.outputs[0].shape, (std::vector<int64_t>{kDynamicDim, 7}));
      Executor ex(g);
      EXPECT_EQ(ex.run({at::randn({2, 3, 8, 8})})[0].sizes(), (std::vector<int64_t>{2, 7}));
    }
  }
  // Seeded: the same seed draws the same layer.
  Graph a = classifier(true, false), b = classifier(true, false);
  reset_head(a, 7, 11);
  reset_head(b, 7, 11);
  EXPECT_TRUE(at::equal(a.initializers.at(a.find_node("fc")->inputs[1]),
                        b.initializers.at(b.find_node("fc")->inputs[1])));
}

TEST(ResetHead, AModelNotEndingInAGemmIsAClearError) {
  test::GraphBuilder b;
  std::string x = b.input("x", {kDynamicDim, 3, 8, 8});
  b.output(b.node("Flatten", {b.node("GlobalAveragePool", {x})}, {}, "flat"));
  Graph g = b.build();
  std::string msg = test::error_of([&] { reset_head(g, 7); });
  EXPECT_NE(msg.find("does not come from a Gemm"), std::string::npos) << msg;
  EXPECT_NE(msg.find("it comes from Flatten node 'flat'"), std::string::npos) << msg;
}

}  // namespace
}  // namespace slim
