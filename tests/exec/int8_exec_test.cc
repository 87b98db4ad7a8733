// Real int8 execution of QDQ Conv/Gemm patterns (OneDnnInt8 steps in the executor) against the
// float simulation the same graph computes with set_int8(false), where every QuantizeLinear,
// DequantizeLinear and Conv runs its own ATen kernel. Quantized outputs may differ by one step
// where float rounding puts a value on the other side of a .5; float outputs agree to float
// rounding.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../test_util.h"
#include "slim/exec/executor.h"
#include "slim/passes/fold_batch_norm.h"

namespace slim {
namespace {

using V = std::vector<int64_t>;

/// Quantized results agree: same dtype and shape, never more than one step apart, and equal on at
/// least 99% of the elements.
::testing::AssertionResult quantized_agree(const at::Tensor& got, const at::Tensor& want) {
  if (got.scalar_type() != want.scalar_type() || got.sizes() != want.sizes())
    return ::testing::AssertionFailure()
           << dtype_name(got.scalar_type()) << " " << shape_to_string(got.sizes().vec())
           << ", expected " << dtype_name(want.scalar_type()) << " "
           << shape_to_string(want.sizes().vec());
  at::Tensor diff = (got.to(at::kInt) - want.to(at::kInt)).abs();
  int max_diff = diff.max().item<int>();
  double differ = diff.ne(0).to(at::kDouble).mean().item<double>();
  if (max_diff <= 1 && differ <= 0.01) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "max difference " << max_diff << ", " << differ * 100 << "% of elements differ";
}

::testing::AssertionResult float_agree(const at::Tensor& got, const at::Tensor& want,
                                       double tol = 1e-5) {
  if (got.scalar_type() != at::kFloat) return ::testing::AssertionFailure() << "not float";
  double e = test::rel_error(got, want);
  if (e <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "relative error " << e;
}

/// Dequantized results agree: equal on at least 99% of the elements, and where not, apart by at
/// most about one quantization step (under 1% of the range for 8 bits).
::testing::AssertionResult dequantized_agree(const at::Tensor& got, const at::Tensor& want) {
  if (got.sizes() != want.sizes()) return ::testing::AssertionFailure() << "shapes differ";
  double range = want.abs().max().item<double>();
  at::Tensor diff = (got - want).abs();
  double max_diff = diff.max().item<double>();
  double differ = diff.gt(range * 1e-6).to(at::kDouble).mean().item<double>();
  if (max_diff <= range * 0.01 && differ <= 0.01) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max difference " << max_diff << " of range " << range
                                       << ", " << differ * 100 << "% of elements differ";
}

/// Agreement for a value named `name`: quantized, dequantized (a DequantizeLinear's output, named
/// *dq_out by the builders here) or float.
::testing::AssertionResult agree(const at::Tensor& got, const at::Tensor& want,
                                 const std::string& name) {
  if (want.scalar_type() != at::kFloat) return quantized_agree(got, want);
  if (name.size() >= 6 && name.compare(name.size() - 6, 6, "dq_out") == 0)
    return dequantized_agree(got, want);
  return float_agree(got, want);
}

/// The widest int8 weights this CPU's int8 kernels accumulate exactly: 127 with VNNI, else 64
/// (see int8_exact_for_any_weights). The tests quantize to that many levels so that they run the
/// int8 kernels on any CPU; Int8Exec.WeightsBeyondSevenBitsNeedVnni covers wider weights.
int64_t weight_levels() { return int8_exact_for_any_weights() ? 127 : kInt8WeightBoundNoVnni; }

/// Whether a fused Conv or Gemm step with input levels of type `x_type` (zero point 0, weights of
/// weight_levels()) runs in int8 on this CPU: always with VNNI, else for u8 inputs only (see
/// int8_exact_for_any_weights).
bool runs_in_int8(at::ScalarType x_type) {
  return int8_exact_for_any_weights() || x_type == at::kByte;
}

/// Symmetric int8 weights with one scale per slice along `axis`: scale = max|w| / levels.
struct QuantizedWeight {
  at::Tensor q, scale;
};

QuantizedWeight quantize_weight(const at::Tensor& w, int64_t axis,
                                int64_t levels = weight_levels()) {
  std::vector<int64_t> others;
  for (int64_t d = 0; d < w.dim(); ++d)
    if (d != axis) others.push_back(d);
  at::Tensor scale = (w.abs().amax(others) / levels).clamp_min(1e-8);
  std::vector<int64_t> shape(w.dim(), 1);
  shape[axis] = w.size(axis);
  at::Tensor q = at::round(w / scale.reshape(shape)).clamp(-levels, levels).to(at::kChar);
  return {q, scale};
}

/// The QDQ pieces the quantizer writes, on top of test::GraphBuilder.
class QdqBuilder {
 public:
  test::GraphBuilder b;

  /// x -> QuantizeLinear(scale, zp) -> DequantizeLinear; returns the DQ output, and the
  /// QuantizeLinear's in `q_out`.
  std::string qdq(const std::string& x, float scale, at::ScalarType type, const std::string& name,
                  int zero_point = 0, std::string* q_out = nullptr) {
    b.init(name + "_s", at::scalar_tensor(scale));
    b.init(name + "_zp", at::scalar_tensor(zero_point, at::TensorOptions().dtype(type)));
    auto q = b.node("QuantizeLinear", {x, name + "_s", name + "_zp"}, {}, name + "_q");
    if (q_out) *q_out = q;
    return b.node("DequantizeLinear", {q, name + "_s", name + "_zp"}, {}, name + "_dq");
  }
  /// Per-channel int8 weights along `axis` behind a DequantizeLinear.
  std::string weight(const std::string& name, const QuantizedWeight& w, int64_t axis) {
    b.init(name + "_q", w.q);
    b.init(name + "_s", w.scale);
    b.init(name + "_zp", at::zeros({w.scale.size(0)}, at::kChar));
    return b.node("DequantizeLinear", {name + "_q", name + "_s", name + "_zp"}, {{"axis", axis}},
                  name + "_dq");
  }
  /// int32 bias with scale x_scale * w_scale behind a DequantizeLinear.
  std::string bias(const std::string& name, const at::Tensor& bias, float x_scale,
                   const at::Tensor& w_scale) {
    at::Tensor s = w_scale * x_scale;
    b.init(name + "_q", at::round(bias / s).to(at::kInt));
    b.init(name + "_s", s);
    b.init(name + "_zp", at::zeros({s.size(0)}, at::kInt));
    return b.node("DequantizeLinear", {name + "_q", name + "_s", name + "_zp"},
                  {{"axis", int64_t{0}}}, name + "_dq");
  }
  /// Relu, Clip(0, 6) with bounds as initializers, LeakyRelu(0.1), or nothing.
  std::string activation(const std::string& y, const std::string& kind) {
    if (kind == "Relu") return b.node("Relu", {y}, {}, "act");
    if (kind == "LeakyRelu") return b.node("LeakyRelu", {y}, {{"alpha", 0.1f}}, "act");
    if (kind == "Clip")
      return b.node("Clip",
                    {y, b.init("lo", at::scalar_tensor(0.f)), b.init("hi", at::scalar_tensor(6.f))},
                    {}, "act");
    return y;
  }
};

float qmax(at::ScalarType t) { return t == at::kByte ? 255.f : 127.f; }

struct ConvCase {
  std::string label;
  V input;   // N, C, H, W
  V weight;  // O, C/group, kh, kw
  std::map<std::string, AttrValue> attrs;
  bool bias;
  std::string activation;  // "", Relu, Clip, LeakyRelu
  at::ScalarType x_type;   // kByte (input >= 0) or kChar
  at::ScalarType y_type;   // kFloat: no QuantizeLinear; kByte or kChar
};

at::Tensor conv_input(const ConvCase& c, int64_t n) {
  V shape{n, c.input[1], c.input[2], c.input[3]};
  return c.x_type == at::kByte ? at::rand(shape) : at::randn(shape);
}

/// x -> QDQ -> Conv(QDQ weights, QDQ bias) -> activation -> [QDQ with scale `y_scale`]. Graph
/// outputs: the QuantizeLinear's output and the final DequantizeLinear's, or the float result.
Graph conv_graph(const ConvCase& c, float y_scale, int x_zero_point = 0) {
  at::manual_seed(11);
  QdqBuilder q;
  auto x = q.b.input("x", {kDynamicDim, c.input[1], c.input[2], c.input[3]});
  const float x_scale = c.x_type == at::kByte ? 1.f / 255 : 3.f / 127;
  auto xd = q.qdq(x, x_scale, c.x_type, "x", x_zero_point);
  QuantizedWeight w = quantize_weight(at::randn(c.weight) * 0.3, 0);
  std::vector<std::string> in{xd, q.weight("w", w, 0)};
  if (c.bias) in.push_back(q.bias("b", at::randn({c.weight[0]}), x_scale, w.scale));
  auto y = q.activation(q.b.node("Conv", in, c.attrs, "conv"), c.activation);
  if (c.y_type == at::kFloat) {
    q.b.output(y);
  } else {
    std::string yq;
    auto yd = q.qdq(y, y_scale, c.y_type, "y", 0, &yq);
    q.b.output(yq, c.y_type);
    q.b.output(yd);
  }
  return q.b.build();
}

/// An output scale that saturates a few of the largest values, as a calibrated one does.
float calibrated_scale(const ConvCase& c) {
  ConvCase f = c;
  f.y_type = at::kFloat;
  Graph g = conv_graph(f, 0);
  Executor ex(g);
  at::manual_seed(3);
  at::Tensor y = ex.run({conv_input(c, 4)})[0];
  return y.abs().max().item<float>() * 0.9f / qmax(c.y_type);
}

std::vector<ConvCase> conv_cases() {
  const V p1{1, 1, 1, 1}, s2{2, 2};
  const auto u8 = at::kByte, s8 = at::kChar, f32 = at::kFloat;
  return {
      {"3x3 pad 1 + relu -> u8",
       {0, 16, 10, 10},
       {24, 16, 3, 3},
       {{"pads", p1}},
       true,
       "Relu",
       u8,
       u8},
      {"3x3 stride 2, no bias, no activation -> s8",
       {0, 16, 11, 11},
       {20, 16, 3, 3},
       {{"pads", p1}, {"strides", s2}},
       false,
       "",
       s8,
       s8},
      {"depthwise 3x3 + clip(0,6) -> u8",
       {0, 32, 9, 9},
       {32, 1, 3, 3},
       {{"pads", p1}, {"group", int64_t{32}}},
       true,
       "Clip",
       u8,
       u8},
      {"depthwise 3x3 stride 2 + relu -> u8",
       {0, 24, 14, 14},
       {24, 1, 3, 3},
       {{"pads", p1}, {"strides", s2}, {"group", int64_t{24}}},
       true,
       "Relu",
       u8,
       u8},
      {"pointwise (inner product) + relu -> u8",
       {0, 32, 7, 7},
       {48, 32, 1, 1},
       {},
       true,
       "Relu",
       u8,
       u8},
      {"pointwise -> float (no QuantizeLinear)",
       {0, 32, 6, 6},
       {40, 32, 1, 1},
       {},
       true,
       "",
       u8,
       f32},
      {"pointwise s8 -> s8, no bias", {0, 16, 5, 5}, {16, 16, 1, 1}, {}, false, "", s8, s8},
      {"first layer 1 channel 3x3 s2 + relu, int8 input",
       {0, 1, 28, 28},
       {16, 1, 3, 3},
       {{"pads", p1}, {"strides", s2}},
       true,
       "Relu",
       s8,
       u8},
      {"first layer RGB 3x3 s2 + relu, int8 input",
       {0, 3, 16, 16},
       {8, 3, 3, 3},
       {{"pads", p1}, {"strides", s2}},
       true,
       "Relu",
       s8,
       u8},
      {"3x3 + clip -> float", {0, 8, 8, 8}, {12, 8, 3, 3}, {{"pads", p1}}, true, "Clip", u8, f32},
      {"3x3 -> float, bias, no activation (feeds a residual Add)",
       {0, 8, 8, 8},
       {8, 8, 3, 3},
       {{"pads", p1}},
       true,
       "",
       s8,
       f32},
      {"3x3 + leaky relu -> s8",
       {0, 8, 8, 8},
       {12, 8, 3, 3},
       {{"pads", p1}},
       true,
       "LeakyRelu",
       s8,
       s8},
      {"grouped 3x3 (2 groups) + relu -> u8",
       {0, 8, 6, 6},
       {12, 4, 3, 3},
       {{"pads", p1}, {"group", int64_t{2}}},
       true,
       "Relu",
       u8,
       u8},
  };
}

/// Runs `g` with int8 on and off on the same inputs; checks every output agrees and returns the
/// int8 op count of the int8 run.
int compare_int8_with_simulation(Graph& g, const std::vector<at::Tensor>& inputs) {
  Executor fast(g), sim(g);
  sim.set_int8(false);
  EXPECT_TRUE(fast.int8());
  auto got = fast.run(inputs), want = sim.run(inputs);
  EXPECT_EQ(sim.int8_ops_last_run(), 0);
  EXPECT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    SCOPED_TRACE("output " + g.outputs[i].name);
    EXPECT_TRUE(agree(got[i], want[i], g.outputs[i].name));
    EXPECT_TRUE(got[i].is_contiguous()) << "graph outputs leave in the default layout";
  }
  return fast.int8_ops_last_run();
}

TEST(Int8Exec, ConvVariantsMatchTheFloatSimulation) {
  for (const auto& c : conv_cases()) {
    SCOPED_TRACE(c.label);
    float y_scale = c.y_type == at::kFloat ? 0.f : calibrated_scale(c);
    Graph g = conv_graph(c, y_scale);
    Executor fast(g), sim(g);
    sim.set_int8(false);
    for (int64_t n : {1, 5}) {
      SCOPED_TRACE("batch " + std::to_string(n));
      at::manual_seed(100 + n);
      at::Tensor x = conv_input(c, n);
      auto got = fast.run({x}), want = sim.run({x});
      // Without VNNI oneDNN has only its reference int8 kernel for some shapes (grouped convs):
      // those run as their QDQ nodes too.
      if (int8_exact_for_any_weights())
        EXPECT_EQ(fast.int8_ops_last_run(), 1) << "the pattern was not run in int8";
      else
        EXPECT_LE(fast.int8_ops_last_run(), runs_in_int8(c.x_type) ? 1 : 0);
      EXPECT_EQ(sim.int8_ops_last_run(), 0);
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_TRUE(agree(got[i], want[i], g.outputs[i].name)) << "output " << g.outputs[i].name;
        EXPECT_TRUE(got[i].is_contiguous());
      }
      if (c.y_type != at::kFloat) {
        // Not trivially equal: a good share of the outputs is neither 0 nor saturated.
        at::Tensor q = got[0].to(at::kInt);
        double inside =
            (q.gt(c.y_type == at::kByte ? 0 : -128) & q.lt(c.y_type == at::kByte ? 255 : 127))
                .to(at::kDouble)
                .mean()
                .item<double>();
        EXPECT_GT(inside, 0.3);
      }
    }
  }
}

TEST(Int8Exec, BiasAndScalesUseOneDnnSemanticsExactly) {
  // One output channel, weights 1, input all 1 (quantized to 10 at scale 0.1): the accumulator
  // is 10 * C * 9 in the middle; bias 2.5 must be added in real units whatever order oneDNN
  // applies bias and output scale in.
  QdqBuilder q;
  auto x = q.b.input("x", {1, 4, 5, 5});
  auto xd = q.qdq(x, 0.1f, at::kByte, "x");
  QuantizedWeight w{at::ones({1, 4, 3, 3}, at::kChar), at::full({1}, 0.5f)};
  auto y =
      q.b.node("Conv", {xd, q.weight("w", w, 0), q.bias("b", at::full({1}, 2.5f), 0.1f, w.scale)},
               {{"pads", V{1, 1, 1, 1}}}, "conv");
  q.b.output(y);
  Graph g = q.b.build();
  Executor ex(g);
  at::Tensor out = ex.run({at::ones({1, 4, 5, 5})})[0];
  EXPECT_EQ(ex.int8_ops_last_run(), 1);
  // 4 channels * 9 taps * (10 * 0.1) * (1 * 0.5) + 2.5 = 20.5 in the middle.
  EXPECT_FLOAT_EQ(out[0][0][2][2].item<float>(), 20.5f);
  EXPECT_FLOAT_EQ(out[0][0][0][0].item<float>(), 4 * 4 * 0.5f + 2.5f);
}

TEST(Int8Exec, ChainOfConvsPassesInt8TensorsBetweenFusedSteps) {
  // conv1 (3x3, relu) -> QDQ u8 -> depthwise (clip) -> QDQ u8 -> pointwise -> QDQ signed ->
  // pointwise (float out); the QuantizeLinear outputs stay NHWC u8/s8 between the steps and their
  // DequantizeLinear steps are skipped. Signed values are stored as s8 with zero point 0, or as
  // u8 with zero point 128 (ONNX Runtime's preferred form; the kernels flip the top bit).
  for (bool u8_signed : {false, true}) {
    SCOPED_TRACE(u8_signed ? "signed values as u8 + 128" : "signed values as s8");
    const at::ScalarType st = u8_signed ? at::kByte : at::kChar;
    const int szp = u8_signed ? 128 : 0;
    at::manual_seed(5);
    QdqBuilder q;
    auto x = q.b.input("x", {kDynamicDim, 3, 12, 12});
    const float sx = 3.f / 127;
    auto h = q.qdq(x, sx, st, "x", szp);
    QuantizedWeight w1 = quantize_weight(at::randn({16, 3, 3, 3}) * 0.3, 0);
    h = q.b.node("Conv", {h, q.weight("w1", w1, 0), q.bias("b1", at::randn({16}), sx, w1.scale)},
                 {{"pads", V{1, 1, 1, 1}}}, "conv1");
    h = q.b.node("Relu", {h}, {}, "relu1");
    const float s1 = 3.f / 255;
    h = q.qdq(h, s1, at::kByte, "h1");
    QuantizedWeight w2 = quantize_weight(at::randn({16, 1, 3, 3}) * 0.5, 0);
    h = q.b.node("Conv", {h, q.weight("w2", w2, 0), q.bias("b2", at::randn({16}), s1, w2.scale)},
                 {{"pads", V{1, 1, 1, 1}}, {"group", int64_t{16}}, {"strides", V{2, 2}}}, "conv2");
    h = q.b.node("Clip",
                 {h, q.b.init("lo", at::scalar_tensor(0.f)), q.b.init("hi", at::scalar_tensor(6.f))},
                 {}, "clip2");
    const float s2 = 6.f / 255;
    h = q.qdq(h, s2, at::kByte, "h2");
    QuantizedWeight w3 = quantize_weight(at::randn({24, 16, 1, 1}) * 0.3, 0);
    h = q.b.node("Conv", {h, q.weight("w3", w3, 0), q.bias("b3", at::randn({24}), s2, w3.scale)},
                 {}, "conv3");
    std::string yq;
    const float sy = 8.f / 127;
    auto yd = q.qdq(h, sy, st, "y", szp, &yq);
    QuantizedWeight w4 = quantize_weight(at::randn({8, 24, 1, 1}) * 0.3, 0);
    auto z = q.b.node("Conv", {yd, q.weight("w4", w4, 0), q.bias("b4", at::randn({8}), sy, w4.scale)},
                      {}, "conv4");
    q.b.output(yq, st);
    q.b.output(yd);
    q.b.output(z);
    Graph g = q.b.build();
    for (int64_t n : {1, 5}) {
      at::manual_seed(n);
      // conv1 and conv4 read signed levels: in int8 with VNNI only.
      EXPECT_EQ(compare_int8_with_simulation(g, {at::randn({n, 3, 12, 12})}),
                int8_exact_for_any_weights() ? 4 : 2);
    }
  }
}

TEST(Int8Exec, ResidualAddRunsOnTheIntegerTensors) {
  // x -> QDQ -> conv -> QDQ -> Add(, x's DQ) -> [Relu] -> QDQ: the Add reads both integer tensors
  // (one NHWC from the conv step, one as given) and writes the output levels itself, as ONNX
  // Runtime's QLinearAdd does; the DequantizeLinear steps it reads past are skipped.
  for (bool u8_signed : {false, true}) {
    for (bool relu : {false, true}) {
      SCOPED_TRACE(std::string(u8_signed ? "u8 + 128" : "s8") + (relu ? ", relu" : ""));
      const at::ScalarType st = u8_signed ? at::kByte : at::kChar;
      const int szp = u8_signed ? 128 : 0;
      at::manual_seed(7);
      QdqBuilder q;
      auto x = q.b.input("x", {kDynamicDim, 8, 6, 6});
      const float sx = 3.f / 127, sh = 4.f / 127;
      auto xd = q.qdq(x, sx, st, "x", szp);
      QuantizedWeight w = quantize_weight(at::randn({8, 8, 3, 3}) * 0.2, 0);
      auto h = q.b.node("Conv", {xd, q.weight("w", w, 0), q.bias("b", at::randn({8}), sx, w.scale)},
                        {{"pads", V{1, 1, 1, 1}}}, "conv");
      auto hd = q.qdq(h, sh, st, "h", szp);
      auto y = q.b.node("Add", {hd, xd}, {}, "add");
      if (relu) y = q.b.node("Relu", {y}, {}, "relu");
      std::string yq;
      const at::ScalarType yt = relu ? at::kByte : st;
      auto yd = q.qdq(y, relu ? 6.f / 255 : 6.f / 127, yt, "y", relu ? 0 : szp, &yq);
      q.b.output(yq, yt);
      q.b.output(yd);
      Graph g = q.b.build();
      for (int64_t n : {1, 3}) {
        at::manual_seed(n);
        // The conv reads signed levels (int8 with VNNI only); the Add runs in int8 anywhere.
        EXPECT_EQ(compare_int8_with_simulation(g, {at::randn({n, 8, 6, 6})}),
                  int8_exact_for_any_weights() ? 2 : 1);
      }
    }
  }
  // Broadcasting Adds are left to the float kernels.
  at::manual_seed(8);
  QdqBuilder q;
  auto x = q.b.input("x", {kDynamicDim, 4, 3, 3});
  auto c = q.b.input("c", {1, 4, 1, 1});
  auto y = q.b.node("Add", {q.qdq(x, 0.02f, at::kChar, "x"), q.qdq(c, 0.02f, at::kChar, "c")}, {},
                    "add");
  std::string yq;
  q.qdq(y, 0.04f, at::kChar, "y", 0, &yq);
  q.b.output(yq, at::kChar);
  Graph g = q.b.build();
  EXPECT_EQ(compare_int8_with_simulation(g, {at::randn({2, 4, 3, 3}), at::randn({1, 4, 1, 1})}), 0);
}

struct GemmCase {
  std::string label;
  bool trans_b;
  bool bias;
  std::string activation;
  at::ScalarType x_type, y_type;
};

TEST(Int8Exec, GemmMatchesTheFloatSimulation) {
  const std::vector<GemmCase> cases = {
      {"transB=1, bias -> float logits", true, true, "", at::kChar, at::kFloat},
      {"transB=0 (axis 1 weights), relu -> u8", false, true, "Relu", at::kByte, at::kByte},
      {"transB=1, no bias -> s8", true, false, "", at::kByte, at::kChar},
  };
  const int64_t k = 64, n_out = 24;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    at::manual_seed(21);
    QdqBuilder q;
    auto x = q.b.input("x", {kDynamicDim, k});
    const float sx = c.x_type == at::kByte ? 1.f / 255 : 3.f / 127;
    auto xd = q.qdq(x, sx, c.x_type, "x");
    at::Tensor wf = at::randn({n_out, k}) * 0.2;
    if (!c.trans_b) wf = wf.t().contiguous();
    QuantizedWeight w = quantize_weight(wf, c.trans_b ? 0 : 1);
    std::vector<std::string> in{xd, q.weight("w", w, c.trans_b ? 0 : 1)};
    if (c.bias) in.push_back(q.bias("b", at::randn({n_out}), sx, w.scale));
    auto y = q.activation(q.b.node("Gemm", in, {{"transB", int64_t{c.trans_b ? 1 : 0}}}, "gemm"),
                          c.activation);
    if (c.y_type == at::kFloat) {
      q.b.output(y);
    } else {
      std::string yq;
      q.qdq(y, 4.f / qmax(c.y_type), c.y_type, "y", 0, &yq);
      q.b.output(yq, c.y_type);
    }
    Graph g = q.b.build();
    for (int64_t m : {1, 7}) {
      at::Tensor xin = c.x_type == at::kByte ? at::rand({m, k}) : at::randn({m, k});
      EXPECT_EQ(compare_int8_with_simulation(g, {xin}), runs_in_int8(c.x_type) ? 1 : 0);
    }
  }
}

// 8-bit weights (|w| up to 127) with u8 inputs near 255, where a pair of products summed in int16
// saturates (255 * (127 + 127) = 64770): with VNNI the step runs in int8, without it (e.g.
// ONEDNN_MAX_CPU_ISA=AVX2, as on CPUs before Cascade Lake or Zen 4) it runs as its QDQ nodes.
// Either way the output is the simulation's, which a saturating kernel missed by 16% here.
TEST(Int8Exec, WeightsBeyondSevenBitsNeedVnni) {
  const int64_t k = 64, n_out = 24;
  at::manual_seed(22);
  QdqBuilder q;
  auto x = q.b.input("x", {kDynamicDim, k});
  auto xd = q.qdq(x, 1.f / 255, at::kByte, "x");
  // Weights of one sign per output channel: every pair of products adds up.
  at::Tensor wf = at::rand({n_out, k}) * (at::randint(0, 2, {n_out, 1}) * 2 - 1);
  QuantizedWeight w = quantize_weight(wf, 0, /*levels=*/127);
  ASSERT_GT(w.q.to(at::kShort).abs().max().item<int>(), kInt8WeightBoundNoVnni);
  std::vector<std::string> in{xd, q.weight("w", w, 0),
                              q.bias("b", at::zeros({n_out}), 1.f / 255, w.scale)};
  q.b.output(q.b.node("Gemm", in, {{"transB", int64_t{1}}}, "gemm"));
  Graph g = q.b.build();
  const at::Tensor xin = 0.9 + 0.1 * at::rand({5, k});  // levels near 255
  EXPECT_EQ(compare_int8_with_simulation(g, {xin}), int8_exact_for_any_weights() ? 1 : 0);
  std::printf("[   info   ] VNNI: %s\n", int8_exact_for_any_weights() ? "yes" : "no");
}

TEST(Int8Exec, NonZeroActivationZeroPointFallsBack) {
  ConvCase c = conv_cases()[0];
  Graph g = conv_graph(c, 0.05f, /*x_zero_point=*/3);
  at::manual_seed(1);
  at::Tensor x = conv_input(c, 2);
  EXPECT_EQ(compare_int8_with_simulation(g, {x}), 0);
  // Exactly the simulation: the same kernels ran.
  Executor fast(g), sim(g);
  sim.set_int8(false);
  EXPECT_TRUE(at::equal(fast.run({x})[0], sim.run({x})[0]));

  // A zero point that becomes non-zero after compiling is noticed too.
  Graph g2 = conv_graph(c, 0.05f);
  Executor ex(g2);
  ex.run({x});
  EXPECT_EQ(ex.int8_ops_last_run(), 1);
  g2.initializers.at("y_zp").fill_(7);
  Graph ref = g2.clone();
  Executor sim2(ref);
  sim2.set_int8(false);
  EXPECT_TRUE(at::equal(ex.run({x})[0], sim2.run({x})[0]));
  EXPECT_EQ(ex.int8_ops_last_run(), 0);
}

TEST(Int8Exec, AbsentActivationZeroPointRunsInInt8) {
  // ONNX's default zero point is 0 of the levels' type: u8 when the QuantizeLinear has none either,
  // s8 when only the DequantizeLinear leaves it out (the type of its input then says which).
  for (bool signed_x : {false, true}) {
    SCOPED_TRACE(signed_x ? "s8 input" : "u8 input");
    ConvCase c = conv_cases()[signed_x ? 1 : 0];
    ASSERT_EQ(c.x_type, signed_x ? at::kChar : at::kByte);
    Graph g = conv_graph(c, calibrated_scale(c));
    g.find_node("x_dq")->inputs.resize(2);
    if (!signed_x) g.find_node("x_q")->inputs.resize(2);
    at::manual_seed(2);
    EXPECT_EQ(compare_int8_with_simulation(g, {conv_input(c, 3)}), runs_in_int8(c.x_type) ? 1 : 0);
  }
}

TEST(Int8Exec, TrainingModeFrozenNodesAndOneDnnOffFallBack) {
  ConvCase c = conv_cases()[4];
  float y_scale = calibrated_scale(c);
  at::manual_seed(2);
  at::Tensor x = conv_input(c, 3);
  {
    Graph g = conv_graph(c, y_scale);
    Graph ref_g = conv_graph(c, y_scale);
    Executor ex(g), sim(ref_g);
    sim.set_int8(false);
    ex.set_training(true);
    sim.set_training(true);
    at::Tensor got = ex.run({x})[0];
    EXPECT_EQ(ex.int8_ops_last_run(), 0);
    EXPECT_TRUE(at::equal(got, sim.run({x})[0]));
    ex.set_training(false);
    ex.run({x});
    EXPECT_EQ(ex.int8_ops_last_run(), 1);
  }
  {
    Graph g = conv_graph(c, y_scale);
    g.frozen_nodes.insert("conv");
    Executor ex(g);
    ex.run({x});
    EXPECT_EQ(ex.int8_ops_last_run(), 0);
  }
  {
    Graph g = conv_graph(c, y_scale);
    Executor ex(g);
    ex.set_onednn(false);
    ex.run({x});
    EXPECT_EQ(ex.int8_ops_last_run(), 0) << "set_onednn(false) means no oneDNN at all";
  }
}

TEST(Int8Exec, FetchedValuesInsideThePatternAreStillProduced) {
  ConvCase c = conv_cases()[0];  // 3x3 + relu -> u8
  Graph g = conv_graph(c, calibrated_scale(c));
  Executor fast(g), sim(g);
  sim.set_int8(false);
  at::manual_seed(4);
  at::Tensor x = conv_input(c, 2);
  const std::vector<std::vector<std::string>> fetches = {
      {"y_q_out"},                          // the step's own output: int8 still runs
      {"x_dq_out", "y_q_out"},              // the skipped input DequantizeLinear
      {"conv_out", "act_out", "y_dq_out"},  // values the fused step does not produce
  };
  const int want_int8[] = {1, 1, 0};
  for (size_t f = 0; f < fetches.size(); ++f) {
    auto got = fast.run_named({{"x", x}}, fetches[f]);
    auto want = sim.run_named({{"x", x}}, fetches[f]);
    EXPECT_EQ(fast.int8_ops_last_run(), want_int8[f]);
    for (const auto& name : fetches[f]) {
      SCOPED_TRACE(name);
      EXPECT_TRUE(agree(got.at(name), want.at(name), name));
      EXPECT_TRUE(got.at(name).is_contiguous());
    }
  }

  // The conv output as a graph output: the int8 step ends at the conv (float output); the
  // activation and QuantizeLinear run their own kernels.
  QdqBuilder q;
  auto xi = q.b.input("x", {kDynamicDim, 16, 10, 10});
  auto xd = q.qdq(xi, 1.f / 255, at::kByte, "x");
  at::manual_seed(8);
  QuantizedWeight w = quantize_weight(at::randn({24, 16, 3, 3}) * 0.3, 0);
  auto y = q.b.node("Conv", {xd, q.weight("w", w, 0)}, {{"pads", V{1, 1, 1, 1}}}, "conv");
  q.b.output(y);
  std::string yq;
  q.qdq(q.b.node("Relu", {y}, {}, "act"), 0.02f, at::kByte, "y", 0, &yq);
  q.b.output(yq, at::kByte);
  Graph g2 = q.b.build();
  EXPECT_EQ(compare_int8_with_simulation(g2, {x}), 1);
}

TEST(Int8Exec, ChangedWeightsAndScalesAreRepacked) {
  ConvCase c = conv_cases()[3];  // depthwise
  Graph g = conv_graph(c, calibrated_scale(c));
  Executor fast(g), sim(g);
  sim.set_int8(false);
  at::manual_seed(6);
  at::Tensor x = conv_input(c, 2);
  EXPECT_TRUE(agree(fast.run({x})[0], sim.run({x})[0], "y_q_out"));
  g.initializers.at("w_q").neg_();  // in place: the version counter moves
  EXPECT_TRUE(agree(fast.run({x})[0], sim.run({x})[0], "y_q_out"));
  g.initializers["y_s"] = g.initializers.at("y_s") * 2;  // replaced
  EXPECT_TRUE(agree(fast.run({x})[0], sim.run({x})[0], "y_q_out"));
  EXPECT_EQ(fast.int8_ops_last_run(), 1);
  // A channel with weight scale 0 (pruned) outputs its bias alone.
  g.initializers.at("w_s")[0] = 0;
  at::Tensor got = fast.run({x})[0], want = sim.run({x})[0];
  EXPECT_EQ(fast.int8_ops_last_run(), 1);
  EXPECT_TRUE(agree(got, want, "y_q_out"));
  EXPECT_TRUE(at::equal(got.select(1, 0), want.select(1, 0)));
}

/// The QDQ form of a float model as the quantizer writes it: BatchNormalization folded, every
/// Conv/Gemm input quantized (uint8 when calibration saw no negative value, else int8; scale
/// max|x| / qmax), weights int8 per output channel, biases int32 at x_scale * w_scale.
Graph quantize_model(Graph g, const at::Tensor& calibration) {
  fold_batch_norm(g);
  std::vector<std::string> acts;
  for (const auto& n : g.nodes)
    if (n.op_type == "Conv" || n.op_type == "Gemm") acts.push_back(n.inputs[0]);
  std::map<std::string, at::Tensor> seen;
  {
    Executor ex(g);
    seen = ex.run_named({{g.inputs[0].name, calibration}}, acts);
  }
  std::vector<Node> added;
  std::map<std::string, std::pair<std::string, float>> dq_of;  // activation -> (DQ output, scale)
  auto add = [&](const std::string& op, std::vector<std::string> in,
                 std::map<std::string, AttrValue> attrs, const std::string& name) {
    Node n;
    n.op_type = op;
    n.name = g.unique_name(name);
    n.inputs = std::move(in);
    n.outputs = {g.unique_name(name + "_out")};
    n.attrs = std::move(attrs);
    g.nodes.push_back(n);
    return n.outputs[0];
  };
  const size_t count = g.nodes.size();
  for (size_t i = 0; i < count; ++i) {
    if (g.nodes[i].op_type != "Conv" && g.nodes[i].op_type != "Gemm") continue;
    const Node n = g.nodes[i];
    const std::string& a = n.inputs[0];
    if (!dq_of.count(a)) {
      const at::Tensor& v = seen.at(a);
      at::ScalarType t = v.min().item<float>() >= 0 ? at::kByte : at::kChar;
      float s = std::max(v.abs().max().item<float>(), 1e-6f) / qmax(t);
      std::string sn = g.unique_name(n.name + "_x_s"), zn = g.unique_name(n.name + "_x_zp");
      g.initializers[sn] = at::scalar_tensor(s);
      g.initializers[zn] = at::scalar_tensor(0, at::TensorOptions().dtype(t));
      auto qo = add("QuantizeLinear", {a, sn, zn}, {}, n.name + "_x_q");
      dq_of[a] = {add("DequantizeLinear", {qo, sn, zn}, {}, n.name + "_x_dq"), s};
    }
    const auto [xd, sx] = dq_of.at(a);
    const int64_t axis = n.op_type == "Conv" || n.i("transB", 0) ? 0 : 1;
    QuantizedWeight w = quantize_weight(g.initializers.at(n.inputs[1]), axis);
    std::string base = n.name + "_w";
    g.initializers[base + "_q"] = w.q;
    g.initializers[base + "_s"] = w.scale;
    g.initializers[base + "_zp"] = at::zeros({w.scale.size(0)}, at::kChar);
    std::vector<std::string> in{
        xd, add("DequantizeLinear", {base + "_q", base + "_s", base + "_zp"}, {{"axis", axis}},
                base + "_dq")};
    if (!n.input(2).empty()) {
      at::Tensor bs = w.scale * sx;
      std::string bb = n.name + "_b";
      g.initializers[bb + "_q"] =
          at::round(g.initializers.at(n.inputs[2]).reshape({-1}) / bs).to(at::kInt);
      g.initializers[bb + "_s"] = bs;
      g.initializers[bb + "_zp"] = at::zeros({bs.size(0)}, at::kInt);
      in.push_back(add("DequantizeLinear", {bb + "_q", bb + "_s", bb + "_zp"},
                       {{"axis", int64_t{0}}}, bb + "_dq"));
    }
    g.nodes[i].inputs = in;
  }
  g.topo_sort();
  g.remove_dead();
  g.trainable.clear();
  g.verify();
  return g;
}

TEST(Int8Exec, QdqMobileNetV1RunsEveryConvAndTheGemmInInt8) {
  Graph f = test::mnist_mobilenet_v1();
  test::randomize_batch_norm(f, 9);
  at::manual_seed(10);
  Graph g = quantize_model(f, at::randn({8, 1, 28, 28}));
  int convs = 0, int8_convs = 0;
  for (const auto& n : g.nodes) {
    if (n.op_type != "Conv" && n.op_type != "Gemm") continue;
    ++convs;
    int8_convs += runs_in_int8(g.initializers.at(n.name + "_x_zp").scalar_type());
  }
  EXPECT_EQ(convs, 28);
  EXPECT_EQ(int8_convs, int8_exact_for_any_weights() ? 28 : 27);  // conv1 reads the signed image
  Executor fast(g), sim(g);
  sim.set_int8(false);
  for (int64_t n : {1, 4}) {
    at::Tensor x = at::randn({n, 1, 28, 28});
    at::Tensor got = fast.run({x})[0], want = sim.run({x})[0];
    EXPECT_EQ(fast.int8_ops_last_run(), int8_convs);
    // One-step differences inside the network move the logits a little.
    EXPECT_LT(test::rel_error(got, want), 0.05);
    EXPECT_TRUE(at::equal(got.argmax(1), want.argmax(1)));
  }
}

TEST(Int8Exec, ReleasedWeightsGiveTheSameOutputsAndLeaveTheGraph) {
  // `slim run`: weights an int8 step packed are freed from the graph during the first run.
  Graph f = test::mnist_mobilenet_v1();
  test::randomize_batch_norm(f, 9);
  at::manual_seed(11);
  Graph g = quantize_model(f, at::randn({8, 1, 28, 28}));
  Graph one_shot = g;  // the same tensors; the executor drops its copy's references
  Executor kept(g), released(one_shot);
  released.set_release_weights(true);
  at::Tensor x = at::randn({2, 1, 28, 28});
  at::Tensor want = kept.run({x})[0];
  EXPECT_TRUE(at::equal(released.run({x})[0], want));
  int freed = 0, int8_convs = released.int8_ops_last_run();
  for (const auto& n : g.nodes) {
    if (n.op_type != "Conv" && n.op_type != "Gemm") continue;
    const Node* dq = nullptr;
    for (const auto& m : g.nodes)
      if (m.outputs[0] == n.inputs[1]) dq = &m;
    ASSERT_NE(dq, nullptr);
    const bool gone = !one_shot.initializers.at(dq->inputs[0]).defined();
    freed += gone;
    EXPECT_TRUE(g.initializers.at(dq->inputs[0]).defined());
  }
  EXPECT_EQ(freed, int8_convs);
  EXPECT_GE(freed, 27);
  int undefined = 0;
  for (const auto& [name, t] : one_shot.initializers) undefined += !t.defined();
  EXPECT_EQ(undefined, freed);  // nothing but the packed weights
  // Later runs of the same shape need nothing that was freed; another shape says what is gone.
  EXPECT_TRUE(at::equal(released.run({x})[0], want));
  const std::string msg = test::error_of([&] { released.run({at::randn({3, 1, 28, 28})}); });
  EXPECT_NE(msg.find("freed after an int8 step packed it"), std::string::npos) << msg;
}

}  // namespace
}  // namespace slim
