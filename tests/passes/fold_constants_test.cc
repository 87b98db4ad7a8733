#include "slim/passes/fold_constants.h"

#include <gtest/gtest.h>

#include "test_util.h"
#include "slim/exec/executor.h"
#include "slim/exec/infer_shapes.h"

namespace slim {
namespace {

using Ints = std::vector<int64_t>;

/// x.view(x.size(0), -1) as PyTorch exports it: Shape -> Gather(0) -> Unsqueeze -> Concat.
Graph flatten_by_shape_graph(int64_t opset = 13) {
  test::GraphBuilder b(opset);
  auto x = b.input("x", {kDynamicDim, 2, 3, 3});
  auto c = b.node("Conv", {x, b.init("w", at::randn({4, 2, 1, 1}))}, {}, "conv");
  auto s = b.node("Shape", {c}, {}, "shape");
  auto g0 = b.node("Gather", {s, b.init("zero", at::scalar_tensor(0, at::kLong))},
                   {{"axis", int64_t{0}}}, "gather");
  auto u = b.node("Unsqueeze", {g0, b.init("axes0", at::tensor({0}, at::kLong))}, {}, "unsq");
  auto cat = b.node("Concat", {u, b.init("minus1", at::tensor({-1}, at::kLong))},
                    {{"axis", int64_t{0}}}, "cat");
  auto r = b.node("Reshape", {c, cat}, {}, "reshape");
  auto y = b.node("Gemm", {r, b.init("fc", at::randn({36, 5}))}, {}, "fc");
  b.output(y);
  return b.build();
}

TEST(FoldConstants, FoldsBatchShapeSubgraphKeepingDynamicBatch) {
  Graph g = flatten_by_shape_graph();
  Graph ref = g.clone();
  infer_shapes(g);
  int removed = fold_constants(g);
  g.verify();
  EXPECT_EQ(removed, 4);  // Shape, Gather, Unsqueeze, Concat
  auto ops = g.op_histogram();
  EXPECT_EQ(ops.count("Shape"), 0u);
  EXPECT_EQ(ops.count("Concat"), 0u);
  const Node* r = g.find_node("reshape");
  ASSERT_NE(r, nullptr);
  auto target = g.initializers.at(r->inputs[1]);
  EXPECT_TRUE(at::equal(target, at::tensor({0, -1}, at::kLong))) << target;
  // Same numbers as before, at batch sizes the probe never used.
  Executor before(ref), after(g);
  for (int64_t n : {1, 4, 7}) {
    at::Tensor x = at::randn({n, 2, 3, 3});
    EXPECT_TRUE(at::equal(before.run({x})[0], after.run({x})[0]));
  }
}

TEST(FoldConstants, FoldsConstantNodesAndWeightTransforms) {
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 4});
  auto wt = b.node("Transpose", {b.init("w", at::randn({3, 4}))}, {}, "wt");
  auto y = b.node("MatMul", {x, wt}, {}, "mm");
  b.output(y);
  Graph g = b.build();
  Node c;
  c.name = "half";
  c.op_type = "Constant";
  c.outputs = {"half_out"};
  c.attrs["value"] = at::full({}, 0.5f);
  g.nodes.insert(g.nodes.begin(), c);
  Node mul;
  mul.name = "scale";
  mul.op_type = "Mul";
  mul.inputs = {"mm_out", "half_out"};
  mul.outputs = {"scaled"};
  g.nodes.push_back(mul);
  g.outputs[0].name = "scaled";
  g.verify();
  Graph ref = g.clone();
  infer_shapes(g);
  EXPECT_EQ(fold_constants(g), 2);  // Constant and Transpose become initializers
  EXPECT_EQ(g.nodes.size(), 2u);
  EXPECT_TRUE(g.is_initializer("half_out"));
  EXPECT_FALSE(g.trainable.count("half_out"));  // folded constants are not weights
  at::Tensor in = at::randn({2, 4});
  EXPECT_TRUE(at::allclose(Executor(ref).run({in})[0], Executor(g).run({in})[0]));
}

TEST(FoldConstants, DoesNotFoldArithmeticOnTheBatch) {
  // batch * 2 cannot be a constant: the graph must keep computing it at run time.
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 6});
  auto s = b.node("Shape", {x}, {}, "shape");
  auto n = b.node("Slice", {s, b.init("s0", at::tensor({0}, at::kLong)),
                            b.init("e1", at::tensor({1}, at::kLong))}, {}, "slice");
  auto n2 = b.node("Mul", {n, b.init("two", at::tensor({2}, at::kLong))}, {}, "double");
  auto cat = b.node("Concat", {n2, b.init("three", at::tensor({3}, at::kLong))},
                    {{"axis", int64_t{0}}}, "cat");
  auto r = b.node("Reshape", {x, cat}, {}, "reshape");
  b.output(r);
  Graph g = b.build();
  infer_shapes(g);
  fold_constants(g);
  g.verify();
  EXPECT_EQ(g.op_histogram().count("Mul"), 1u);
  Executor ex(g);
  for (int64_t batch : {1, 3}) {
    auto y = ex.run({at::randn({batch, 6})})[0];
    EXPECT_EQ(y.sizes().vec(), (Ints{batch * 2, 3}));
  }
}

TEST(FoldConstants, LeavesGraphOutputsAndFixedShapesAlone) {
  test::GraphBuilder b;
  auto x = b.input("x", {2, 3});
  auto s = b.node("Shape", {x}, {}, "shape");
  b.output(s, at::kLong);
  Graph g = b.build();
  infer_shapes(g);
  EXPECT_EQ(fold_constants(g), 0);  // its output is a graph output: keep the node
  EXPECT_EQ(g.nodes.size(), 1u);
}

TEST(FoldConstants, KeepsDequantizeLinearOfInt8Weights) {
  // A QDQ model's weights stay int8 behind their DequantizeLinear, for int8 execution.
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 4});
  auto w = b.node("DequantizeLinear",
                  {b.init("w_q", at::randint(-127, 128, {3, 4}, at::kChar)),
                   b.init("w_s", at::full({3}, 0.01f)), b.init("w_zp", at::zeros({3}, at::kChar))},
                  {{"axis", int64_t{0}}}, "w_dq");
  auto y = b.node("Gemm", {x, w}, {{"transB", int64_t{1}}}, "fc");
  b.output(y);
  Graph g = b.build();
  infer_shapes(g);
  EXPECT_EQ(fold_constants(g), 0);
  EXPECT_EQ(g.op_histogram().count("DequantizeLinear"), 1u);
  EXPECT_EQ(g.initializers.at("w_q").scalar_type(), at::kChar);
}

}  // namespace
}  // namespace slim
