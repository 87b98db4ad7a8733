// quantize_qdq on a zoo MobileNetV1 (must fire), with not_quant_pattern (must not fire) and on
// bad input (must refuse); weights, biases and scales checked against their definitions.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <fstream>
#include <map>

#include "slim/exec/executor.h"
#include "slim/exec/onednn_int8.h"
#include "slim/onnx/onnx_io.h"
#include "slim/passes/fold_batch_norm.h"
#include "slim/quant/fake_quant.h"
#include "slim/quant/quant_targets.h"
#include "slim/quant/quantize_qdq.h"
#include "test_util.h"

namespace slim {
namespace {

/// A table with every quantized value's abs max on `x` (quantize_outputs as in `o`).
ScaleTable abs_max_table(Graph& g, const at::Tensor& x, const QuantOptions& o = {}) {
  ScaleTable table;
  std::vector<std::string> fetch = quantized_values(find_quant_targets(g, o));
  Executor ex(g);
  auto v = ex.run_named({{g.inputs[0].name, x}}, fetch);
  for (const auto& name : fetch) {
    ActivationScale a;
    a.threshold = a.abs_max = v.at(name).abs().max().item<double>();
    a.is_unsigned = is_nonnegative(g, name);
    table.activations[name] = a;
  }
  return table;
}

/// A folded MobileNetV1 x0.25 and a table with every quantized value's abs max on `x`.
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
    table = abs_max_table(g, x);
  }
};

/// Every QuantizeLinear of an activation is the only reader of the value it rounds, so a runtime
/// can keep that value in int8; returns the number of such pairs.
int64_t check_values_read_only_quantized(const Graph& q) {
  int64_t pairs = 0;
  for (const auto& n : q.nodes) {
    if (n.op_type != "QuantizeLinear") continue;
    ++pairs;
    EXPECT_EQ(q.consumers(n.input(0)).size(), 1u) << n.input(0) << " is also read unquantized";
    for (int c : q.consumers(n.outputs[0])) EXPECT_EQ(q.nodes[c].op_type, "DequantizeLinear");
  }
  return pairs;
}

TEST(QuantizeQdq, RewritesEveryConvAndGemmIntoQdqWithInt8Weights) {
  Fixture f;
  Graph q = f.g.clone();
  QdqReport r = quantize_qdq(q, f.table, {});
  q.verify();
  EXPECT_EQ(r.nodes, 28);
  EXPECT_EQ(r.activations, 29);  // the inputs of the 28 ops, and conv6_sep_relu
  EXPECT_EQ(r.weights, 28);
  auto h = q.op_histogram();
  EXPECT_EQ(h["QuantizeLinear"], 29);
  EXPECT_EQ(h["DequantizeLinear"], 29 + 28 + 28);  // activations, weights, biases
  EXPECT_EQ(q.outputs[0].name, f.g.outputs[0].name);
  EXPECT_EQ(check_values_read_only_quantized(q), 29);

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
  // The image is signed: the levels of int8 (scale threshold / 127) stored as uint8 with zero
  // point 128.
  const Node* c1 = q.find_node("conv1");
  const Node& image_dq = q.nodes[q.producer(c1->inputs[0])];
  const at::Tensor& image_zp = q.initializers.at(image_dq.inputs[2]);
  EXPECT_EQ(image_zp.scalar_type(), at::kByte);
  EXPECT_EQ(image_zp.item<int>(), 128);
  EXPECT_FLOAT_EQ(q.initializers.at(image_dq.inputs[1]).item<float>(),
                  static_cast<float>(f.table.activations.at("image").threshold / 127));
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

TEST(QuantizeQdq, StepOutputsAreQuantizedExceptGraphOutputs) {
  Fixture f;
  Graph q = f.g.clone();
  quantize_qdq(q, f.table, {});
  // The last conv's step ends in a QuantizeLinear although only the pool reads it ...
  const Node& pool = *q.find_node("pool");
  const Node& dq = q.nodes[q.producer(pool.input(0))];
  ASSERT_EQ(dq.op_type, "DequantizeLinear");
  const Node& qn = q.nodes[q.producer(dq.input(0))];
  ASSERT_EQ(qn.op_type, "QuantizeLinear");
  EXPECT_EQ(qn.input(0), "conv6_sep_relu");
  EXPECT_EQ(q.initializers.at(qn.input(2)).scalar_type(), at::kByte);  // after Relu: uint8
  // ... while the logits, a graph output, stay float.
  EXPECT_EQ(q.nodes[q.producer(q.outputs[0].name)].op_type, "Gemm");
  EXPECT_TRUE(q.consumers(q.outputs[0].name).empty());

  // quantize_outputs = false: the pool reads the float value.
  QuantOptions o;
  o.quantize_outputs = false;
  Graph plain = f.g.clone();
  EXPECT_EQ(quantize_qdq(plain, f.table, o).activations, 28);
  EXPECT_EQ(plain.find_node("pool")->input(0), "conv6_sep_relu");
}

/// A folded zoo MobileNetV2 x0.25 for 3x32x32: linear bottleneck convs feed residual Adds, ReLU6
/// is a Clip, and block inputs are read by a conv and by an Add.
Graph folded_mobilenet_v2() {
  ZooOptions z;
  z.input = {3, 32, 32};
  z.classes = 10;
  z.scale = 0.25;
  Graph g = zoo_build("mobilenet_v2", z);
  test::randomize_batch_norm(g, 3);
  fold_batch_norm(g);
  return g;
}

TEST(QuantizeQdq, ResidualValuesAreReadQuantizedByEveryReader) {
  Graph g = folded_mobilenet_v2();
  at::manual_seed(5);
  at::Tensor x = at::rand({4, 3, 32, 32}) * 2 - 1;
  Graph q = g.clone();
  QdqReport r = quantize_qdq(q, abs_max_table(g, x), {});
  q.verify();
  int64_t adds = 0;
  for (const auto& n : q.nodes) {
    if (n.op_type != "Add") continue;
    ++adds;
    for (const auto& in : n.inputs)
      EXPECT_EQ(q.nodes[q.producer(in)].op_type, "DequantizeLinear") << n.label() << " reads " << in;
  }
  EXPECT_GT(adds, 0);
  EXPECT_EQ(check_values_read_only_quantized(q), r.activations);
  // Every conv's step ends in a QuantizeLinear.
  for (const auto& n : q.nodes) {
    if (n.op_type != "Conv") continue;
    std::string v = n.outputs[0];
    auto readers = q.consumers(v);
    ASSERT_EQ(readers.size(), 1u) << n.label();
    if (q.nodes[readers[0]].op_type == "Clip") readers = q.consumers(q.nodes[readers[0]].outputs[0]);
    ASSERT_EQ(readers.size(), 1u) << n.label();
    EXPECT_EQ(q.nodes[readers[0]].op_type, "QuantizeLinear") << n.label();
  }
  // Slim's int8 kernels compute what the QDQ graph says, also where a float Add reads an int8
  // step's output.
  Executor eq(q), sim(q);
  sim.set_int8(false);
  const at::Tensor y8 = eq.run({x})[0];
  // Slim's quantizer writes 8-bit weights, which run in int8 on CPUs with VNNI only (see
  // int8_exact_for_any_weights); the residual Adds run in int8 everywhere.
  if (int8_exact_for_any_weights()) EXPECT_GT(eq.int8_ops_last_run(), 40);
  EXPECT_LT(test::rel_error(y8, sim.run({x})[0]), 0.02);
}

/// Op types (domain::type for non-default domains) of the graph ONNX Runtime runs for `model`
/// after its QDQ fusions, with their counts; also checks that it runs at all.
std::map<std::string, int> ort_optimized_ops(const std::string& model, const at::Tensor& x,
                                             const std::string& dir) {
  npy_save(x, dir + "/x.npy");
  const std::string opt = model + ".ort_optimized.onnx";
  auto r = test::ort_run_files(model, dir + "/x.npy", dir + "/y.npy",
                               "--optimized " + test::quote(opt));
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  std::map<std::string, int> ops;
  onnx::ModelProto m;
  std::ifstream f(opt, std::ios::binary);
  EXPECT_TRUE(m.ParseFromIstream(&f)) << opt;
  for (const auto& n : m.graph().node())
    ++ops[(n.domain().empty() ? "" : n.domain() + "::") + n.op_type()];
  return ops;
}

/// A small ResNet: a stem conv, two residual blocks (conv-relu-conv + shortcut, Add, Relu), the
/// second with a strided 1x1 conv on its shortcut, global pool and fc.
Graph small_resnet() {
  at::manual_seed(12);
  test::GraphBuilder b;
  auto conv = [&](const std::string& x, int64_t cin, int64_t cout, int64_t k, int64_t stride,
                  const std::string& name) {
    b.init(name + "_w", at::randn({cout, cin, k, k}) * (1.0 / std::sqrt(cin * k * k)));
    b.init(name + "_b", at::randn({cout}) * 0.1);
    return b.node("Conv", {x, name + "_w", name + "_b"},
                  {{"kernel_shape", std::vector<int64_t>{k, k}},
                   {"pads", std::vector<int64_t>(4, k / 2)},
                   {"strides", std::vector<int64_t>{stride, stride}}},
                  name);
  };
  auto x = b.input("x", {kDynamicDim, 3, 16, 16});
  auto y = b.node("Relu", {conv(x, 3, 8, 3, 1, "stem")});
  auto h = b.node("Relu", {conv(y, 8, 8, 3, 1, "b1c1")});
  y = b.node("Relu", {b.node("Add", {conv(h, 8, 8, 3, 1, "b1c2"), y})});
  h = b.node("Relu", {conv(y, 8, 16, 3, 2, "b2c1")});
  y = b.node("Relu", {b.node("Add", {conv(h, 16, 16, 3, 1, "b2c2"), conv(y, 8, 16, 1, 2, "b2sc")})});
  y = b.node("Flatten", {b.node("GlobalAveragePool", {y})});
  b.init("fc_w", at::randn({16, 10}) * 0.25);
  b.init("fc_b", at::zeros({10}));
  b.output(b.node("Gemm", {y, "fc_w", "fc_b"}, {}, "fc"));
  return b.build();
}

TEST(QuantizeQdq, OnnxRuntimeRunsEveryQuantizedConvInInt8) {
  auto count = [](const std::map<std::string, int>& ops, const std::string& op) {
    int n = 0;
    for (const auto& [name, k] : ops)
      if (name == op || name.size() > op.size() + 2 &&
                            name.compare(name.size() - op.size() - 2, op.size() + 2, "::" + op) == 0)
        n += k;
    return n;
  };
  const std::string dir = test::temp_dir("qdq_ort_fusion");
  // A small ResNet, and MobileNetV2, whose linear bottlenecks give signed values read by a conv
  // and an Add.
  struct Case {
    std::string name;
    Graph g;
    std::vector<int64_t> input;
    int adds;  ///< residual Adds ONNX Runtime runs in int8 (those read by a quantized op)
  };
  std::vector<Case> cases;
  cases.push_back({"resnet", small_resnet(), {2, 3, 16, 16}, 1});
  cases.push_back({"mobilenet_v2", folded_mobilenet_v2(), {2, 3, 32, 32}, 10});
  for (auto& c : cases) {
    SCOPED_TRACE(c.name);
    Graph& g = c.g;
    at::manual_seed(6);
    at::Tensor x = at::rand(c.input) * 2 - 1;
    const int convs = g.op_histogram()["Conv"];
    // Every conv becomes int8 in ONNX Runtime (no float conv is left), and so does each residual
    // Add whose output a quantized op reads (the small ResNet's last one feeds the float pool).
    Graph q = g.clone();
    quantize_qdq(q, abs_max_table(g, x), {});
    const std::string path = dir + "/" + c.name + ".onnx";
    onnx_save(q, path);
    auto ops = ort_optimized_ops(path, x, dir);
    EXPECT_EQ(count(ops, "QLinearConv"), convs);
    EXPECT_EQ(count(ops, "Conv") + count(ops, "FusedConv"), 0);
    EXPECT_EQ(count(ops, "QLinearAdd"), c.adds);
    // And it computes what Slim's int8 kernels compute.
    Executor eq(q);
    EXPECT_LT(test::rel_error(npy_load(dir + "/y.npy"), eq.run({x})[0]), 0.05);
    // The convs, the fc and the Adds; the convs and the fc need VNNI for 8-bit weights.
    EXPECT_EQ(eq.int8_ops_last_run(), (int8_exact_for_any_weights() ? convs + 1 : 0) + c.adds);

    // With the step outputs in float (the previous export), convs whose output only a float op
    // reads stay float convs in ONNX Runtime, which dequantize their weights on every run.
    QuantOptions o;
    o.quantize_outputs = false;
    Graph plain = g.clone();
    quantize_qdq(plain, abs_max_table(g, x, o), o);
    const std::string plain_path = dir + "/" + c.name + "_plain.onnx";
    onnx_save(plain, plain_path);
    ops = ort_optimized_ops(plain_path, x, dir);
    EXPECT_GE(count(ops, "Conv") + count(ops, "FusedConv"), 3);
  }
}

TEST(QuantizeQdq, PerTensorWeightsHaveOneScale) {
  Fixture f;
  QuantOptions o;
  o.weight_algo = WeightQuantAlgo::kAbsMax;
  Graph q = f.g.clone();
  quantize_qdq(q, f.table, o);
  const Node* conv = q.find_node("conv3_1_sep");
  const Node& wdq = q.nodes[q.producer(conv->inputs[1])];
  EXPECT_FALSE(wdq.has("axis"));
  EXPECT_EQ(q.initializers.at(wdq.inputs[1]).dim(), 0);
}

/// The weight of QuantizeQdq.BiasCorrectionMovesTheLevelsTheFormulaMoves (two filters whose
/// levels bias correction moves at 3 bits).
at::Tensor bias_correction_weight() {
  return at::tensor({-0.49f, -0.53f, -0.95f, -0.54f, 0.50f, -0.50f, -0.86f, -0.40f,  //
                     -0.39f, -0.92f, -0.94f, -0.84f, -0.52f, -0.51f, 0.16f, -0.62f})
      .reshape({2, 8});
}

// quantize_qdq passes bias correction on to the weights, per channel and per tensor: a 1x1 conv
// with that weight, quantized at 3 bits, holds the corrected levels.
TEST(QuantizeQdq, BiasCorrectionReachesTheQuantizedWeights) {
  test::GraphBuilder b;
  std::string x = b.input("x", {kDynamicDim, 8, 2, 2});
  b.output(b.node("Conv", {x, b.init("w", bias_correction_weight().reshape({2, 8, 1, 1}))}, {},
                  "conv"));
  Graph g = b.build();
  at::manual_seed(3);
  const ScaleTable table = abs_max_table(g, at::randn({4, 8, 2, 2}));
  for (auto algo : {WeightQuantAlgo::kChannelWiseAbsMax, WeightQuantAlgo::kAbsMax}) {
    QuantOptions o;
    o.weight_algo = algo;
    o.weight_bits = 3;
    const int64_t axis = algo == WeightQuantAlgo::kAbsMax ? -1 : 0;
    for (bool correct : {false, true}) {
      Graph q = g.clone();
      quantize_qdq(q, table, o, correct);
      const Node& dq = q.nodes[q.producer(q.find_node("conv")->inputs[1])];
      const at::Tensor& levels = q.initializers.at(dq.inputs[0]);
      EXPECT_TRUE(at::equal(levels, quantize_weight(g.initializers.at("w"), 3, axis, correct).first))
          << to_string(algo) << (correct ? " corrected" : " plain");
      // Plain levels hold five -3s, corrected ones none (see the test below).
      EXPECT_EQ(levels.eq(-3).sum().item<int64_t>(), correct ? 0 : 5) << to_string(algo);
    }
  }
}

// PaddleSlim's bias_correction_w on a weight whose levels it moves, the expected levels written
// out from the formula. 3 bits (b = 3): channel 0 has s = 0.95 and step s/3; plain rounding
// gives levels [-2 -2 -3 -2 2 -2 -3 -1], whose dequantized values have a spread 1/0.864 of the
// weights' (population std 0.4733 vs 0.4090) and a mean 0.0433 lower. Shifting by that mean and
// scaling by 0.864 pulls -0.95 to (-0.95 + 0.0433) * 0.864 = -0.783, 2.47 steps: level -2.
// Channel 1 (s = 0.94, ratio 0.847, shift 0.0150) loses its three -3 levels the same way.
// Over the whole tensor with one scale (s = 0.95, ratio 0.857, shift 0.0323) all five -3 go.
TEST(QuantizeQdq, BiasCorrectionMovesTheLevelsTheFormulaMoves) {
  const at::Tensor w = bias_correction_weight();
  auto levels = [](const at::Tensor& q) {
    std::vector<int> v;
    for (int64_t i = 0; i < q.numel(); ++i) v.push_back(q.flatten()[i].item<int>());
    return v;
  };
  using V = std::vector<int>;
  auto [plain, step] = quantize_weight(w, 3, 0);
  EXPECT_EQ(levels(plain), (V{-2, -2, -3, -2, 2, -2, -3, -1, -1, -3, -3, -3, -2, -2, 1, -2}));
  auto [corrected, step2] = quantize_weight(w, 3, 0, /*bias_correction=*/true);
  EXPECT_TRUE(at::equal(step, step2)) << "the scales stay";
  EXPECT_EQ(levels(corrected), (V{-2, -2, -2, -2, 2, -2, -2, -1, -1, -2, -2, -2, -2, -2, 1, -2}));
  // One scale for the tensor.
  auto [tensor_plain, tensor_step] = quantize_weight(w, 3, -1);
  EXPECT_EQ(levels(tensor_plain), levels(plain));  // both channels' max is about 0.95
  auto [tensor_corrected, tensor_step2] = quantize_weight(w, 3, -1, true);
  EXPECT_EQ(tensor_step.dim(), 0);
  EXPECT_EQ(levels(tensor_corrected),
            (V{-2, -2, -2, -2, 2, -2, -2, -1, -1, -2, -2, -2, -2, -2, 1, -2}));
}

// The same formula in plain loops on random weights at 2 to 8 bits, per channel and per tensor.
// Short channels of uniform values are where the correction moves levels (about 20 of 32,000 at
// 3 and 4 bits); normal weights hardly ever move.
TEST(QuantizeQdq, BiasCorrectionMatchesAPlainLoop) {
  constexpr int64_t kChannels = 4000, kPer = 8;
  at::manual_seed(9);
  const at::Tensor w = at::rand({kChannels, kPer}) * 2 - 1;
  const float* p = w.data_ptr<float>();
  int moved = 0;
  for (int bits : {2, 3, 4, 8}) {
    for (int64_t axis : {int64_t{0}, int64_t{-1}}) {
      const double b = std::ldexp(1.0, bits - 1) - 1;
      const at::Tensor q = quantize_weight(w, bits, axis, true).first.to(at::kInt).contiguous();
      const at::Tensor plain = quantize_weight(w, bits, axis).first.to(at::kInt).contiguous();
      const int32_t* qp = q.data_ptr<int32_t>();
      const int32_t* pp = plain.data_ptr<int32_t>();
      const int64_t slices = axis >= 0 ? kChannels : 1, per = w.numel() / slices;
      for (int64_t c = 0; c < slices; ++c) {
        const float* x = p + c * per;
        float s = 0;
        for (int64_t i = 0; i < per; ++i) s = std::max(s, std::abs(x[i]));
        const float st = static_cast<float>(s / b);
        std::vector<double> dq(per);
        double mw = 0, md = 0;
        for (int64_t i = 0; i < per; ++i) {
          const double l = std::min(std::max(std::nearbyint(double(x[i] / st)), -b), b);
          dq[i] = static_cast<float>(l * st);
          mw += x[i];
          md += dq[i];
        }
        mw /= per;
        md /= per;
        double vw = 0, vd = 0;
        for (int64_t i = 0; i < per; ++i) {
          vw += (x[i] - mw) * (x[i] - mw);
          vd += (dq[i] - md) * (dq[i] - md);
        }
        const double ratio = std::sqrt(vw / per) / (std::sqrt(vd / per) + 1e-8);
        for (int64_t i = 0; i < per; ++i) {
          const double v = (dq[i] + (mw - md)) * ratio / st;
          const double want = std::min(std::max(std::nearbyint(v), -b), b);
          const int64_t k = c * per + i;
          // Float32 tensor arithmetic may put a value that lies on a rounding boundary in double
          // on its other side: one level is allowed there, nowhere else.
          if (std::abs(std::abs(v - std::floor(v)) - 0.5) > 1e-4)
            ASSERT_EQ(qp[k], want) << bits << " bits, axis " << axis << ", element " << k;
          else
            ASSERT_NEAR(qp[k], want, 1.0) << bits << " bits, axis " << axis << ", element " << k;
          moved += qp[k] != pp[k];
        }
      }
    }
  }
  EXPECT_GT(moved, 10) << "too few levels moved for the case to test the correction";
  std::printf("[   info   ] bias correction moved %d levels\n", moved);
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
