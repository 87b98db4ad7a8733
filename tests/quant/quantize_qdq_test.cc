// quantize_qdq on a zoo MobileNetV1 (must fire), with not_quant_pattern (must not fire) and on
// bad input (must refuse); weights, biases and scales checked against their definitions.
#include <gtest/gtest.h>

#include "slim/exec/executor.h"
#include "slim/onnx/onnx_io.h"
#include "slim/passes/fold_batch_norm.h"
#include "slim/quant/fake_quant.h"
#include "slim/quant/quant_targets.h"
#include "slim/quant/quantize_qdq.h"
#include "test_util.h"

namespace slim {
namespace {

/// A folded MobileNetV1 x0.25 and a table with every target activation's abs max on `x`.
struct Fixture {
  Graph g;
  ScaleTable table;
  at::Tensor x;
  Fixture() {
    ZooOptions z;
    z.input = {1, 28, 28};
    z.classes = 10;
    z.scale = 0.25;
    g = zoo_build("mobilenet_v1", z);
    test::randomize_batch_norm(g, 2);
    fold_batch_norm(g);
    at::manual_seed(4);
    x = at::rand({8, 1, 28, 28}) * 2 - 1;
    std::vector<std::string> fetch;
    for (const auto& t : find_quant_targets(g, {})) fetch.push_back(t.activation);
    Executor ex(g);
    auto v = ex.run_named({{"image", x}}, fetch);
    for (const auto& name : fetch) {
      ActivationScale a;
      a.threshold = a.abs_max = v.at(name).abs().max().item<double>();
      a.is_unsigned = is_nonnegative(g, name);
      table.activations[name] = a;
    }
  }
};

TEST(QuantizeQdq, RewritesEveryConvAndGemmIntoQdqWithInt8Weights) {
  Fixture f;
  Graph q = f.g.clone();
  QdqReport r = quantize_qdq(q, f.table, {});
  q.verify();
  EXPECT_EQ(r.nodes, 28);
  EXPECT_EQ(r.activations, 28);
  EXPECT_EQ(r.weights, 28);
  auto h = q.op_histogram();
  EXPECT_EQ(h["QuantizeLinear"], 28);
  EXPECT_EQ(h["DequantizeLinear"], 28 + 28 + 28);  // activations, weights, biases
  EXPECT_EQ(q.outputs[0].name, f.g.outputs[0].name);

  // conv2_1_sep: int8 weight levels round(W / (max|W_c| / 127)) per output channel; bias int32
  // with scale s_x * s_W; input uint8 (after Relu) with scale threshold / 255.
  const Node* conv = q.find_node("conv2_1_sep");
  ASSERT_NE(conv, nullptr);
  const Node* wdq = &q.nodes[q.producer(conv->inputs[1])];
  ASSERT_EQ(wdq->op_type, "DequantizeLinear");
  EXPECT_EQ(wdq->i("axis", -1), 0);
  at::Tensor wq = q.initializers.at(wdq->inputs[0]);
  at::Tensor ws = q.initializers.at(wdq->inputs[1]);
  ASSERT_EQ(wq.scalar_type(), at::kChar);
  at::Tensor w = f.g.initializers.at(f.g.find_node("conv2_1_sep")->inputs[1]);
  at::Tensor want_s = abs_max(w, 0) / 127;
  EXPECT_TRUE(at::allclose(ws, want_s, 1e-6, 0));
  at::Tensor wf = w.reshape({w.size(0), -1});
  EXPECT_TRUE(at::equal(wq.reshape({w.size(0), -1}).to(at::kFloat),
                        at::round(wf / want_s.unsqueeze(1)).clamp(-127, 127)));
  const Node* xdq = &q.nodes[q.producer(conv->inputs[0])];
  at::Tensor xs = q.initializers.at(xdq->inputs[1]);
  EXPECT_EQ(q.initializers.at(xdq->inputs[2]).scalar_type(), at::kByte);
  const std::string act = q.nodes[q.producer(xdq->inputs[0])].inputs[0];
  EXPECT_EQ(act, "conv2_1_dw_relu");
  EXPECT_FLOAT_EQ(xs.item<float>(),
                  static_cast<float>(f.table.activations.at(act).threshold / 255));
  const Node* bdq = &q.nodes[q.producer(conv->inputs[2])];
  at::Tensor bq = q.initializers.at(bdq->inputs[0]);
  ASSERT_EQ(bq.scalar_type(), at::kInt);
  at::Tensor b = f.g.initializers.at(f.g.find_node("conv2_1_sep")->inputs[2]);
  at::Tensor bs = q.initializers.at(bdq->inputs[1]);
  EXPECT_TRUE(at::allclose(bs, ws * xs, 1e-6, 0));
  EXPECT_TRUE(at::equal(bq, at::round(b / bs).to(at::kInt)));
  // The image is signed: int8 with scale threshold / 127.
  const Node* c1 = q.find_node("conv1");
  EXPECT_EQ(q.initializers.at(q.nodes[q.producer(c1->inputs[0])].inputs[2]).scalar_type(),
            at::kChar);
  // Float weights are gone; the file holds int8 levels.
  EXPECT_FALSE(q.is_initializer(f.g.find_node("conv2_1_sep")->inputs[1]));

  // Numerics: the quantized model's logits stay close to the float ones, and it round-trips
  // through ONNX.
  Executor ef(f.g), eq(q);
  at::Tensor yf = ef.run({f.x})[0], yq = eq.run({f.x})[0];
  EXPECT_LT(test::rel_error(yq, yf), 0.1);
  Graph back = onnx_parse(onnx_serialize(q), "q");
  Executor eb(back);
  EXPECT_TRUE(at::equal(eb.run({f.x})[0], yq));
}

TEST(QuantizeQdq, PerTensorWeightsAndBiasCorrection) {
  Fixture f;
  QuantOptions o;
  o.weight_algo = WeightQuantAlgo::kAbsMax;
  Graph q = f.g.clone();
  quantize_qdq(q, f.table, o);
  const Node* conv = q.find_node("conv3_1_sep");
  const Node& wdq = q.nodes[q.producer(conv->inputs[1])];
  EXPECT_FALSE(wdq.has("axis"));
  EXPECT_EQ(q.initializers.at(wdq.inputs[1]).dim(), 0);

  // Bias correction (PaddleSlim's bias_correction_w): levels of the weight after shifting each
  // channel by its mean quantization error and restoring its standard deviation, same scales.
  // (With the scales unchanged, the correction rarely moves a level: rounding keeps per-channel
  // means and spreads close already.)
  at::manual_seed(9);
  at::Tensor w = at::randn({8, 16, 1, 1}) + at::linspace(-0.5, 0.5, 8).reshape({8, 1, 1, 1});
  auto [plain, step] = quantize_weight(w, 3, 0);
  auto [corrected, step2] = quantize_weight(w, 3, 0, true);
  EXPECT_TRUE(at::equal(step, step2));
  at::Tensor s = abs_max(w, 0);
  at::Tensor w2 = w.reshape({w.size(0), -1});
  at::Tensor dq = plain.to(at::kFloat).reshape({w.size(0), -1}) * step.unsqueeze(1);
  at::Tensor mean_err = (w2 - dq).mean(1, true);
  at::Tensor ratio = w2.std(1, false, true) / (dq.std(1, false, true) + 1e-8);
  at::Tensor want = quantize_symmetric((dq + mean_err) * ratio, s, 3, 0);
  EXPECT_TRUE(at::equal(corrected.to(at::kFloat).reshape({w.size(0), -1}), want));
}

TEST(QuantizeQdq, NotQuantPatternAndOpTypesLeaveNodesInFloat) {
  Fixture f;
  QuantOptions o;
  o.not_quant_pattern = "^conv2_|fc7";
  Graph q = f.g.clone();
  QdqReport r = quantize_qdq(q, f.table, o);
  EXPECT_EQ(r.nodes, 28 - 5);
  EXPECT_EQ(r.skipped.size(), 5u);
  for (const char* n : {"conv2_1_dw", "conv2_1_sep", "conv2_2_dw", "conv2_2_sep", "fc7"}) {
    const Node* node = q.find_node(n);
    ASSERT_NE(node, nullptr) << n;
    EXPECT_TRUE(q.is_initializer(node->inputs[1])) << n << " keeps its float weight";
  }
  o = {};
  o.quantize_op_types = {"Gemm"};
  Graph only_fc = f.g.clone();
  EXPECT_EQ(quantize_qdq(only_fc, f.table, o).nodes, 1);
}

TEST(QuantizeQdq, RefusesBadInputWithClearErrors) {
  Fixture f;
  auto msg = [&](auto fn) { return test::error_of(fn); };
  // Already quantized.
  Graph q = f.g.clone();
  quantize_qdq(q, f.table, {});
  EXPECT_NE(msg([&] { quantize_qdq(q, f.table, {}); }).find("already quantized"),
            std::string::npos);
  // Bits.
  QuantOptions o;
  o.act_bits = 4;
  Graph g = f.g.clone();
  EXPECT_NE(msg([&] { quantize_qdq(g, f.table, o); }).find("activation_bits is 4"),
            std::string::npos);
  o = {};
  o.weight_bits = 0;
  EXPECT_NE(msg([&] { quantize_qdq(g, f.table, o); }).find("weight_bits must be in 2..16, got 0"),
            std::string::npos);
  // A missing threshold names the activation and its reader.
  ScaleTable partial = f.table;
  partial.activations.erase("conv3_1_dw_relu");
  EXPECT_NE(msg([&] { quantize_qdq(g, partial, {}); }).find("'conv3_1_dw_relu' read by node 'conv3_1_sep'"),
            std::string::npos);
  // Batch norm not folded.
  Graph unfolded = test::mnist_mobilenet_v1();
  EXPECT_NE(msg([&] { quantize_qdq(unfolded, f.table, {}); }).find("fold batch norm"),
            std::string::npos);
  // Nothing to quantize.
  test::GraphBuilder b;
  std::string x = b.input("x", {1, 4});
  b.output(b.node("Relu", {x}));
  Graph relu = b.build();
  EXPECT_NE(msg([&] { quantize_qdq(relu, f.table, {}); }).find("nothing to quantize"),
            std::string::npos);
  // Per-channel needs opset 13.
  Graph old = f.g.clone();
  old.opset = 12;
  EXPECT_NE(msg([&] { quantize_qdq(old, f.table, {}); }).find("opset >= 13"), std::string::npos);
  // The failed calls left the graph alone.
  EXPECT_EQ(g.op_histogram().count("QuantizeLinear"), 0u);
}

}  // namespace
}  // namespace slim
