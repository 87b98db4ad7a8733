#include "slim/ir/graph.h"

#include <gtest/gtest.h>

#include "../test_util.h"
#include "slim/exec/executor.h"

namespace slim {
namespace {

Graph conv_relu_graph() {
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 3, 8, 8});
  auto w = b.init("w", at::randn({4, 3, 3, 3}));
  auto c = b.node("Conv", {x, w}, {{"pads", std::vector<int64_t>{1, 1, 1, 1}}}, "conv");
  auto r = b.node("Relu", {c}, {}, "relu");
  b.output(r);
  return b.build();
}

TEST(Graph, ProducerConsumers) {
  Graph g = conv_relu_graph();
  EXPECT_EQ(g.producer("conv_out"), 0);
  EXPECT_EQ(g.producer("x"), -1);
  EXPECT_EQ(g.consumers("conv_out"), std::vector<int>{1});
  EXPECT_EQ(g.kind("w"), ValueKind::kInitializer);
  EXPECT_EQ(g.kind("x"), ValueKind::kInput);
  EXPECT_EQ(g.kind("relu_out"), ValueKind::kNodeOutput);
  EXPECT_EQ(g.op_histogram().at("Conv"), 1);
}

TEST(Graph, VerifyRejectsUseBeforeDefinition) {
  Graph g = conv_relu_graph();
  std::swap(g.nodes[0], g.nodes[1]);
  EXPECT_THROW(g.verify(), Error);
  g.topo_sort();
  EXPECT_NO_THROW(g.verify());
  EXPECT_EQ(g.nodes[0].op_type, "Conv");
}

TEST(Graph, VerifyRejectsDoubleProducerAndMissingOutput) {
  Graph g = conv_relu_graph();
  g.nodes[1].outputs[0] = "conv_out";
  EXPECT_THROW(g.verify(), Error);
  Graph h = conv_relu_graph();
  h.outputs[0].name = "nowhere";
  try {
    h.verify();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nowhere"), std::string::npos);
  }
}

TEST(Graph, ReplaceAllUsesKeepsOutputNames) {
  // Remove the Relu by redirecting its output to the Conv's: the graph output keeps its name.
  Graph g = conv_relu_graph();
  g.replace_all_uses("relu_out", "conv_out");
  EXPECT_EQ(g.outputs[0].name, "relu_out");
  EXPECT_EQ(g.nodes[0].outputs[0], "relu_out");
  EXPECT_EQ(g.remove_dead(), 1);
  g.verify();
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].op_type, "Conv");
}

TEST(Graph, RemoveDeadDropsUnusedInitializers) {
  Graph g = conv_relu_graph();
  g.initializers["unused"] = at::zeros({2});
  g.mark_default_trainable();
  EXPECT_TRUE(g.trainable.count("unused"));
  g.remove_dead();
  EXPECT_FALSE(g.initializers.count("unused"));
  EXPECT_FALSE(g.trainable.count("unused"));
}

TEST(Graph, DumpShowsOpsAndShapes) {
  Graph g = conv_relu_graph();
  std::string d = g.dump();
  EXPECT_NE(d.find("Conv 'conv'"), std::string::npos) << d;
  EXPECT_NE(d.find("%w<4x3x3x3>"), std::string::npos) << d;
  EXPECT_NE(d.find("input  %x : float32[Nx3x8x8]"), std::string::npos) << d;
}

TEST(Graph, CloneIsDeep) {
  Graph g = conv_relu_graph();
  Graph h = g.clone();
  h.initializers["w"].fill_(0);
  EXPECT_GT(g.initializers["w"].abs().sum().item<float>(), 0);
}

TEST(Graph, TrainableExcludesBatchNormStatistics) {
  test::GraphBuilder b;
  auto x = b.input("x", {1, 2, 4, 4});
  auto y = b.node("BatchNormalization",
                  {x, b.init("s", at::ones({2})), b.init("b", at::zeros({2})),
                   b.init("m", at::zeros({2})), b.init("v", at::ones({2}))});
  b.output(y);
  Graph g = b.build();
  EXPECT_EQ(g.trainable, (std::set<std::string>{"b", "s"}));
}

}  // namespace
}  // namespace slim
