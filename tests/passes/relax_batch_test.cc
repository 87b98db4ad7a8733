#include "slim/passes/relax_batch.h"

#include <gtest/gtest.h>

#include "slim/exec/executor.h"
#include "slim/exec/infer_shapes.h"
#include "test_util.h"

namespace slim {
namespace {

// What PyTorch's plain export of `fc(conv(x).view(x.size(0), -1))` gives: batch fixed at 1 in the
// input and folded into the Reshape target as [1, -1].
Graph fixed_batch_cnn() {
  test::GraphBuilder b;
  std::string x = b.input("x", {1, 3, 8, 8});
  std::string y = b.node("Conv", {x, b.init("w", at::randn({4, 3, 3, 3}))},
                         {{"pads", std::vector<int64_t>{1, 1, 1, 1}}});
  y = b.node("Relu", {y});
  y = b.node("Reshape", {y, b.init("target", at::tensor({int64_t{1}, int64_t{-1}}))});
  y = b.node("Gemm", {y, b.init("fc_w", at::randn({5, 256})), b.init("fc_b", at::randn({5}))},
             {{"transB", int64_t{1}}});
  b.output(y);
  return b.build();
}

TEST(RelaxBatch, APlainPyTorchExportRunsAnyBatchAsOneSampleRunsDo) {
  Graph g = fixed_batch_cnn();
  infer_shapes(g);
  Graph original = g.clone();
  RelaxBatchReport r = relax_batch(g);
  ASSERT_TRUE(r.applicable);
  ASSERT_TRUE(r.relaxed) << r.reason;
  EXPECT_EQ(r.reshapes, 1);
  EXPECT_EQ(g.inputs[0].shape[0], kDynamicDim);
  EXPECT_EQ(g.inputs[0].dim_names[0], "N");
  EXPECT_EQ(g.outputs[0].shape[0], kDynamicDim);
  // The old target is still there for any other reader; the Reshape reads a new one.
  EXPECT_TRUE(at::equal(g.initializers.at("target"), at::tensor({int64_t{1}, int64_t{-1}})));

  at::Tensor x = at::randn({4, 3, 8, 8});
  Executor four(g);
  at::Tensor y = four.run({x})[0];
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{4, 5}));
  Executor one(original);
  for (int64_t i = 0; i < 4; ++i) {
    at::Tensor yi = one.run({x.slice(0, i, i + 1)})[0];
    EXPECT_TRUE(at::allclose(y.slice(0, i, i + 1), yi, 1e-5, 1e-5)) << "sample " << i;
  }
}

TEST(RelaxBatch, AGraphThatMixesTheBatchIsLeftAloneWithTheReason) {
  // [1, 4] -> Transpose -> [4, 1] -> Reshape [1, -1]: at batch 2 the rewritten Reshape would
  // give [4, 2], not two samples.
  test::GraphBuilder b;
  std::string x = b.input("x", {1, 4});
  std::string y = b.node("Transpose", {x}, {{"perm", std::vector<int64_t>{1, 0}}});
  y = b.node("Reshape", {y, b.init("target", at::tensor({int64_t{1}, int64_t{-1}}))});
  b.output(y);
  Graph g = b.build();
  infer_shapes(g);
  RelaxBatchReport r = relax_batch(g);
  EXPECT_TRUE(r.applicable);
  EXPECT_FALSE(r.relaxed);
  EXPECT_NE(r.reason.find("does not carry the batch"), std::string::npos) << r.reason;
  EXPECT_EQ(g.inputs[0].shape[0], 1) << "the graph must be unchanged";
}

TEST(RelaxBatch, ModelsWithASymbolicBatchAreNotTouched) {
  test::GraphBuilder b;
  b.output(b.node("Relu", {b.input("x", {kDynamicDim, 4})}));
  Graph g = b.build();
  RelaxBatchReport r = relax_batch(g);
  EXPECT_FALSE(r.applicable);
  EXPECT_FALSE(r.relaxed);
}

}  // namespace
}  // namespace slim
