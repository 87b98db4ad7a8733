// Embedding quantization on a small text-classifier graph: Gather(table, ids) -> ReduceMean ->
// Gemm, run by Slim and by ONNX Runtime.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "slim/data/npy.h"
#include "slim/exec/executor.h"
#include "slim/onnx/onnx_io.h"
#include "slim/quant/quantize_embedding.h"
#include "test_util.h"

namespace slim {
namespace {

Graph text_model(double outlier) {
  test::GraphBuilder b;
  std::string ids = b.input("ids", {kDynamicDim, 6}, at::kLong);
  at::manual_seed(7);
  at::Tensor table = at::randn({50, 8}) * 0.3;
  table[3][2] = outlier;
  std::string t = b.init("embedding_table", table);
  std::string e = b.node("Gather", {ids, t}, {}, "embed");
  // Gather's data is input 0: build it with the table first.
  Graph g = b.build();
  g.nodes[0].inputs = {t, ids};
  test::GraphBuilder dummy;
  (void)dummy;
  Node mean;
  mean.op_type = "ReduceMean";
  mean.name = "pool";
  mean.inputs = {e};
  mean.outputs = {"pooled"};
  mean.attrs["axes"] = std::vector<int64_t>{1};
  mean.attrs["keepdims"] = int64_t{0};
  g.nodes.push_back(mean);
  g.initializers["fc_w"] = at::randn({8, 3});
  g.initializers["fc_b"] = at::randn({3});
  Node fc;
  fc.op_type = "Gemm";
  fc.name = "fc";
  fc.inputs = {"pooled", "fc_w", "fc_b"};
  fc.outputs = {"logits"};
  g.nodes.push_back(fc);
  ValueInfo out;
  out.name = "logits";
  g.outputs = {out};
  g.mark_default_trainable();
  g.verify();
  return g;
}

TEST(QuantizeEmbedding, Int8TableStaysCloseAndRunsInOnnxRuntime) {
  const std::string dir = test::temp_dir("quant_embedding");
  Graph g = text_model(0.5);
  at::Tensor ids = at::randint(0, 50, {5, 6}, at::kLong);
  ids[0][0] = 3;
  Executor ef(g);
  at::Tensor yf = ef.run({ids})[0];
  Graph q = g.clone();
  EmbeddingReport r = quantize_embedding(q);
  EXPECT_EQ(r.tables, 1);
  EXPECT_EQ(q.initializers.at("embedding_table_quantized").scalar_type(), at::kChar);
  EXPECT_FALSE(q.is_initializer("embedding_table"));
  EXPECT_EQ(q.nodes[q.producer(q.nodes[q.producer("pooled")].inputs[0])].op_type,
            "DequantizeLinear");
  // Per-entry error within half a step of max|W| / 127.
  const double s = g.initializers.at("embedding_table").abs().max().item<double>();
  Executor eq(q);
  at::Tensor rows = eq.run_named({{"ids", ids}}, {"embed_out"}).at("embed_out");
  at::Tensor want = ef.run_named({{"ids", ids}}, {"embed_out"}).at("embed_out");
  EXPECT_LE((rows - want).abs().max().item<double>(), s / 127 / 2 + 1e-7);
  EXPECT_LT(test::rel_error(eq.run({ids})[0], yf), 0.02);
  // ONNX Runtime runs the int8 table.
  const std::string path = dir + "/e.onnx";
  onnx_save(q, path);
  at::Tensor y = test::ort_run(path, ids, dir);
  ASSERT_TRUE(y.defined());
  EXPECT_LT(test::rel_error(y, eq.run({ids})[0]), 1e-5);
}

TEST(QuantizeEmbedding, ThresholdClipsOutliers) {
  Graph g = text_model(40.0);  // one outlier; max |W| >= 1
  Graph auto_clip = g.clone();
  EmbeddingReport r = quantize_embedding(auto_clip);
  ASSERT_EQ(r.thresholds.size(), 1u);
  // Default: the 99.99th percentile of |W|, the element at index floor(0.9999 * (n - 1)) of the
  // sorted |W|: for these 400 values index 398, the largest after the outlier of 40.
  const double s_auto = auto_clip.initializers.at("embedding_table_scale").item<double>() * 127;
  const at::Tensor table = g.initializers.at("embedding_table");
  double largest = 0, second = 0;
  for (int64_t i = 0; i < table.numel(); ++i) {
    const double v = std::abs(table.flatten()[i].item<double>());
    if (v > largest) second = largest, largest = v;
    else if (v > second) second = v;
  }
  EXPECT_EQ(largest, 40.0);
  EXPECT_NEAR(s_auto, second, 1e-6 * second);
  // 20,000 values with two outliers: index floor(0.9999 * 19999) = 19997, the largest value
  // after both (an index of floor(0.9999 * n) would pick the outlier of 50).
  Graph big = g.clone();
  at::manual_seed(8);
  at::Tensor wide = at::randn({2500, 8}) * 0.3;
  wide[10][1] = 50.0;
  wide[20][2] = -60.0;
  big.initializers.at("embedding_table") = wide;
  double third = 0;
  for (int64_t i = 0; i < wide.numel(); ++i) {
    const double v = std::abs(wide.flatten()[i].item<double>());
    if (v < 50.0) third = std::max(third, v);
  }
  quantize_embedding(big);
  EXPECT_NEAR(big.initializers.at("embedding_table_scale").item<double>() * 127, third,
              1e-6 * third);
  EmbeddingOptions o;
  o.threshold = 0.25;
  Graph clipped = g.clone();
  quantize_embedding(clipped, o);
  EXPECT_NEAR(clipped.initializers.at("embedding_table_scale").item<double>() * 127, 0.25, 1e-6);
  EXPECT_EQ(clipped.initializers.at("embedding_table_quantized").abs().max().item<int>(), 127);
  // Errors.
  test::GraphBuilder b;
  std::string x = b.input("x", {1, 4});
  b.output(b.node("Relu", {x}));
  Graph none = b.build();
  EXPECT_NE(test::error_of([&] { quantize_embedding(none); }).find("no Gather"),
            std::string::npos);
  o.threshold = -1;
  EXPECT_NE(test::error_of([&] { quantize_embedding(g, o); }).find("got -1"), std::string::npos);
}

}  // namespace
}  // namespace slim
