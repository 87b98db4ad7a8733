// The executor's oneDNN inference convolutions (prepacked weights, cached primitives, NHWC
// activations, fused activations, inner product for pointwise convs) against ATen's
// at::convolution: the same graph run with set_onednn(false), and at::conv2d written out.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../test_util.h"
#include "slim/exec/executor.h"

namespace slim {
namespace {

::testing::AssertionResult close(const at::Tensor& got, const at::Tensor& want) {
  if (got.sizes() != want.sizes())
    return ::testing::AssertionFailure() << "shape " << shape_to_string(got.sizes().vec())
                                         << ", expected " << shape_to_string(want.sizes().vec());
  if (at::allclose(got, want, 1e-4, 1e-4)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "max abs difference " << (got - want).abs().max().item<double>();
}

struct ConvCase {
  std::string label;
  std::vector<int64_t> input;   // N, C, H, W
  std::vector<int64_t> weight;  // O, C/group, kh, kw
  std::map<std::string, AttrValue> attrs;
  bool bias;
  std::string activation;  // "", Relu, LeakyRelu, Clip
};

/// Conv (+ activation) with the activation's output and, separately, the conv's as outputs when
/// `conv_is_output`.
Graph conv_graph(const ConvCase& c, bool conv_is_output = false) {
  at::manual_seed(7);
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, c.input[1], c.input[2], c.input[3]});
  std::vector<std::string> in{x, b.init("w", at::randn(c.weight) * 0.3)};
  if (c.bias) in.push_back(b.init("b", at::randn({c.weight[0]})));
  auto y = b.node("Conv", in, c.attrs, "conv");
  if (conv_is_output) b.output(y);
  if (c.activation == "Relu") y = b.node("Relu", {y}, {}, "act");
  if (c.activation == "LeakyRelu") y = b.node("LeakyRelu", {y}, {{"alpha", 0.1f}}, "act");
  if (c.activation == "Clip")
    y = b.node("Clip", {y, b.init("lo", at::scalar_tensor(0.f)), b.init("hi", at::scalar_tensor(0.5f))},
               {}, "act");
  if (!c.activation.empty() || !conv_is_output) b.output(y);
  return b.build();
}

std::vector<ConvCase> cases() {
  using V = std::vector<int64_t>;
  return {
      {"pointwise+relu", {3, 16, 5, 5}, {24, 16, 1, 1}, {}, true, "Relu"},
      {"pointwise on 1x1 map (squeeze-excitation)", {4, 32, 1, 1}, {8, 32, 1, 1}, {}, true, ""},
      {"pointwise stride 2", {2, 8, 7, 7}, {16, 8, 1, 1}, {{"strides", V{2, 2}}}, false, "Relu"},
      {"depthwise 3x3 s2 + clip", {2, 12, 9, 9}, {12, 1, 3, 3},
       {{"group", int64_t{12}}, {"strides", V{2, 2}}, {"pads", V{1, 1, 1, 1}}}, true, "Clip"},
      {"grouped conv + leaky relu", {2, 8, 6, 6}, {6, 4, 3, 3},
       {{"group", int64_t{2}}, {"pads", V{1, 1, 1, 1}}}, true, "LeakyRelu"},
      {"dilated, asymmetric pads, stride (1,2)", {1, 5, 10, 11}, {7, 5, 3, 3},
       {{"dilations", V{2, 2}}, {"pads", V{0, 1, 1, 2}}, {"strides", V{1, 2}}}, true, ""},
      {"RGB input 3x3 s2", {2, 3, 16, 16}, {8, 3, 3, 3},
       {{"strides", V{2, 2}}, {"pads", V{1, 1, 1, 1}}}, false, "Relu"},
      {"auto_pad SAME_UPPER 4x4 s2", {1, 4, 7, 7}, {6, 4, 4, 4},
       {{"strides", V{2, 2}}, {"auto_pad", std::string("SAME_UPPER")}}, true, "Relu"},
  };
}

TEST(OneDnnConv, AgreesWithAtenConvolution) {
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.label);
    Graph g = conv_graph(c);
    Graph ref_g = conv_graph(c);
    Executor fast(g), ref(ref_g);
    ref.set_onednn(false);
    ASSERT_TRUE(fast.onednn());
    for (int64_t n : {c.input[0], int64_t{1}}) {  // a second batch size: a second cached plan
      at::Tensor x = at::randn({n, c.input[1], c.input[2], c.input[3]});
      at::Tensor got = fast.run({x})[0], want = ref.run({x})[0];
      EXPECT_EQ(fast.onednn_convs_last_run(), 1) << "the conv fell back to ATen";
      EXPECT_EQ(ref.onednn_convs_last_run(), 0);
      EXPECT_TRUE(close(got, want));
      EXPECT_TRUE(got.is_contiguous()) << "graph outputs leave in the default layout";
    }
  }
}

TEST(OneDnnConv, MatchesConv2dWrittenOut) {
  // Depthwise + fused Clip and pointwise + fused Relu against at::conv2d with the same weights.
  ConvCase dw = cases()[3], pw = cases()[0];
  for (const auto& c : {dw, pw}) {
    SCOPED_TRACE(c.label);
    Graph g = conv_graph(c);
    Executor ex(g);
    at::Tensor x = at::randn(c.input);
    int64_t group = c.attrs.count("group") ? std::get<int64_t>(c.attrs.at("group")) : 1;
    std::vector<int64_t> stride = c.attrs.count("strides")
                                      ? std::get<std::vector<int64_t>>(c.attrs.at("strides"))
                                      : std::vector<int64_t>{1, 1};
    std::vector<int64_t> pad{c.weight[2] / 2, c.weight[3] / 2};
    at::Tensor want = at::conv2d(x, g.initializers.at("w"), g.initializers.at("b"), stride, pad,
                                 {1, 1}, group);
    want = c.activation == "Clip" ? at::clamp(want, 0.0, 0.5) : at::relu(want);
    EXPECT_TRUE(close(ex.run({x})[0], want));
  }
}

TEST(OneDnnConv, FetchingTheConvOutputGivesItBeforeTheActivation) {
  ConvCase c = cases()[0];
  Graph g = conv_graph(c);
  Executor ex(g);
  at::Tensor x = at::randn(c.input);
  auto fused = ex.run_named({{"x", x}}, {"act_out"});
  auto both = ex.run_named({{"x", x}}, {"conv_out", "act_out"});
  at::Tensor want_conv = at::conv2d(x, g.initializers.at("w"), g.initializers.at("b"));
  EXPECT_TRUE(close(both.at("conv_out"), want_conv));
  EXPECT_LT(both.at("conv_out").min().item<float>(), 0.f) << "the activation leaked into conv_out";
  EXPECT_TRUE(close(both.at("act_out"), at::relu(want_conv)));
  EXPECT_TRUE(close(fused.at("act_out"), at::relu(want_conv)));

  // A conv that is itself a graph output is never fused.
  Graph g2 = conv_graph(c, /*conv_is_output=*/true);
  Executor ex2(g2);
  auto outs = ex2.run({x});
  ASSERT_EQ(outs.size(), 2u);
  EXPECT_TRUE(close(outs[0], want_conv));
  EXPECT_TRUE(close(outs[1], at::relu(want_conv)));
}

TEST(OneDnnConv, WeightsChangedInPlaceOrReplacedAreRepacked) {
  for (const auto& c : {cases()[0], cases()[3]}) {
    SCOPED_TRACE(c.label);
    Graph g = conv_graph(c);
    Graph ref_g = conv_graph(c);
    Executor fast(g), ref(ref_g);
    ref.set_onednn(false);
    at::Tensor x = at::randn(c.input);
    EXPECT_TRUE(close(fast.run({x})[0], ref.run({x})[0]));
    // In place, as an optimizer step does (the version counter moves, the storage does not).
    g.initializers.at("w").mul_(-2);
    ref_g.initializers.at("w").mul_(-2);
    EXPECT_TRUE(close(fast.run({x})[0], ref.run({x})[0]));
    // A new tensor under the same name.
    at::Tensor w2 = at::randn(c.weight);
    g.initializers["w"] = w2;
    ref_g.initializers["w"] = w2.clone();
    EXPECT_TRUE(close(fast.run({x})[0], ref.run({x})[0]));
  }
}

TEST(OneDnnConv, TrainingUsesAtenWithGradientsAndEvaluationAfterwardsSeesTheUpdate) {
  ConvCase c = cases()[4];
  Graph g = conv_graph(c);
  Executor ex(g);
  at::Tensor x = at::randn(c.input);
  at::Tensor before = ex.run({x})[0];  // packs the weights
  EXPECT_EQ(ex.onednn_convs_last_run(), 1);
  ex.set_training(true);
  at::Tensor y = ex.run({x})[0];
  EXPECT_EQ(ex.onednn_convs_last_run(), 0) << "training needs ATen's autograd";
  ASSERT_TRUE(y.requires_grad());
  y.sum().backward();
  at::Tensor& w = g.initializers.at("w");
  ASSERT_TRUE(w.grad().defined());
  {
    at::NoGradGuard no_grad;
    w.sub_(w.grad() * 0.5);
  }
  ex.set_training(false);
  at::Tensor after = ex.run({x})[0];
  Graph ref_g = g;
  Executor ref(ref_g);
  ref.set_onednn(false);
  EXPECT_TRUE(close(after, ref.run({x})[0]));
  EXPECT_FALSE(at::allclose(after, before)) << "the trained weights were not used";
}

// --- element-wise work after a conv done by its primitive (post-ops) -------------------------

/// x -> conv a (3x3) -> [chain] -> y, where the chain may add conv r's output (a residual) that
/// is computed from x before conv a.
struct ChainCase {
  std::string label;
  std::string chain;  ///< HardSwish, HardSigmoid, Sigmoid, SiLU, SiLU-swapped, Add+Relu,
                      ///< Add-shared, Add-broadcast, Relu+HardSwish
  std::vector<std::string> fused;  ///< nodes the conv's plan must list as fused
};

Graph chain_graph(const ChainCase& c) {
  at::manual_seed(11);
  test::GraphBuilder b;
  using V = std::vector<int64_t>;
  auto x = b.input("x", {kDynamicDim, 6, 8, 8});
  std::map<std::string, AttrValue> same{{"pads", V{1, 1, 1, 1}}};
  // The residual's conv comes first, so it exists when conv a runs.
  auto r = b.node("Conv", {x, b.init("wr", at::randn({10, 6, 1, 1}) * 0.3)}, {}, "res");
  auto y = b.node("Conv", {x, b.init("w", at::randn({10, 6, 3, 3}) * 0.3),
                           b.init("b", at::randn({10}))}, same, "a");
  if (c.chain == "HardSwish") y = b.node("HardSwish", {y}, {}, "hs");
  if (c.chain == "HardSigmoid")
    y = b.node("HardSigmoid", {y}, {{"alpha", 1.f / 6}, {"beta", 0.5f}}, "hsig");
  if (c.chain == "Sigmoid") y = b.node("Sigmoid", {y}, {}, "sig");
  if (c.chain == "SiLU" || c.chain == "SiLU-swapped") {
    auto s = b.node("Sigmoid", {y}, {}, "sig");
    y = c.chain == "SiLU" ? b.node("Mul", {y, s}, {}, "mul") : b.node("Mul", {s, y}, {}, "mul");
  }
  if (c.chain == "Add+Relu" || c.chain == "Add-shared") {
    y = b.node("Add", {r, y}, {}, "add");
    y = b.node("Relu", {y}, {}, "relu");
  }
  if (c.chain == "Add-shared")  // the residual is read again after the Add
    y = b.node("Mul", {y, r}, {}, "again");
  if (c.chain == "Add-broadcast")
    y = b.node("Add", {y, b.init("bias2", at::randn({1, 10, 1, 1}))}, {}, "add");
  if (c.chain == "Relu+HardSwish") {
    y = b.node("Relu", {y}, {}, "relu");
    y = b.node("HardSwish", {y}, {}, "hs");
  }
  b.output(y);
  if (c.chain == "Add-broadcast" || c.chain == "Sigmoid") b.output(r);
  return b.build();
}

TEST(OneDnnConv, ElementwiseWorkAfterAConvIsDoneByItsPrimitiveWithTheSameResult) {
  const std::vector<ChainCase> chains{
      {"HardSwish", "HardSwish", {"hs"}},
      {"HardSigmoid (MobileNetV3's squeeze-excitation gate)", "HardSigmoid", {"hsig"}},
      {"Sigmoid", "Sigmoid", {"sig"}},
      {"SiLU as PyTorch exports it", "SiLU", {"sig", "mul"}},
      {"SiLU, Mul operands swapped", "SiLU-swapped", {"sig", "mul"}},
      {"residual Add then Relu (ResNet)", "Add+Relu", {"add", "relu"}},
      {"residual read again after the Add", "Add-shared", {"add", "relu"}},
      {"Add of a broadcast constant: the primitive adds it with ATen", "Add-broadcast", {"add"}},
      {"two activations", "Relu+HardSwish", {"relu", "hs"}},
  };
  for (const auto& c : chains) {
    SCOPED_TRACE(c.label);
    Graph g = chain_graph(c), ref_g = chain_graph(c);
    Executor fast(g), ref(ref_g);
    ref.set_onednn(false);
    std::vector<std::string> fused;
    for (const auto& step : fast.plan())
      if (step.node->name == "a")
        for (const Node* n : step.fused) fused.push_back(n->name);
    EXPECT_EQ(fused, c.fused);
    for (int64_t n : {2, 1}) {
      at::Tensor x = at::randn({n, 6, 8, 8});
      auto got = fast.run({x}), want = ref.run({x});
      ASSERT_EQ(got.size(), want.size());
      EXPECT_EQ(fast.onednn_convs_last_run(), 2);
      for (size_t k = 0; k < got.size(); ++k) EXPECT_TRUE(close(got[k], want[k])) << "output " << k;
      // Fetching a value inside the chain runs the steps as written.
      std::string inner = c.fused.size() > 1 ? c.fused[0] + "_out" : "a_out";
      auto named = fast.run_named({{"x", x}}, {inner, g.outputs[0].name});
      auto named_ref = ref.run_named({{"x", x}}, {inner, g.outputs[0].name});
      EXPECT_TRUE(close(named.at(inner), named_ref.at(inner)));
      EXPECT_TRUE(close(named.at(g.outputs[0].name), want[0]));
    }
  }
}

TEST(OneDnnConv, ConvAndResidualAddWithoutOneDnnGiveTheSameAsWritten) {
  // A residual Add whose other operand is computed after the conv is not fused into it (the
  // conv that computes the residual takes the Add instead: "res" reads the chain's result).
  test::GraphBuilder b;
  at::manual_seed(3);
  auto x = b.input("x", {kDynamicDim, 4, 5, 5});
  auto a = b.node("Conv", {x, b.init("wa", at::randn({4, 4, 1, 1}))}, {}, "a");
  auto r = b.node("Conv", {x, b.init("wr", at::randn({4, 4, 1, 1}))}, {}, "res");
  b.output(b.node("Add", {a, r}, {}, "add"));
  Graph g = b.build();
  Executor ex(g);
  std::map<std::string, std::vector<std::string>> fused;
  for (const auto& step : ex.plan())
    for (const Node* n : step.fused) fused[step.node->name].push_back(n->name);
  EXPECT_EQ(fused.count("a"), 0u);
  EXPECT_EQ(fused["res"], std::vector<std::string>{"add"});
  at::Tensor xv = at::randn({3, 4, 5, 5});
  at::Tensor want = at::conv2d(xv, g.initializers.at("wa")) + at::conv2d(xv, g.initializers.at("wr"));
  EXPECT_TRUE(close(ex.run({xv})[0], want));
}

TEST(OneDnnConv, GemmRunsAsAnInnerProductWithTheSameResult) {
  struct GemmCase {
    std::string label;
    bool trans_b;
    std::string bias;  // "", "N", "1xN"
    float alpha = 1.f;
  };
  for (const GemmCase& c : std::vector<GemmCase>{{"classifier (transB, bias [N])", true, "N"},
                                                 {"B not transposed, bias [1, N]", false, "1xN"},
                                                 {"no bias", true, ""},
                                                 {"alpha 0.5: ATen", true, "N", 0.5f}}) {
    SCOPED_TRACE(c.label);
    auto build = [&] {
      at::manual_seed(5);
      test::GraphBuilder b;
      auto x = b.input("x", {kDynamicDim, 24});
      std::vector<std::string> in{
          x, b.init("w", c.trans_b ? at::randn({10, 24}) : at::randn({24, 10}))};
      if (c.bias == "N") in.push_back(b.init("c", at::randn({10})));
      if (c.bias == "1xN") in.push_back(b.init("c", at::randn({1, 10})));
      b.output(b.node("Gemm", in,
                      {{"transB", int64_t{c.trans_b ? 1 : 0}}, {"alpha", c.alpha}}, "gemm"));
      return b.build();
    };
    Graph g = build(), ref_g = build();
    Executor fast(g), ref(ref_g);
    ref.set_onednn(false);
    fast.set_profiling(true);
    for (int64_t n : {1, 5}) {
      at::Tensor x = at::randn({n, 24});
      EXPECT_TRUE(close(fast.run({x})[0], ref.run({x})[0]));
    }
    ASSERT_EQ(fast.profile().size(), 1u);
    EXPECT_EQ(fast.profile()[0].engine, c.alpha == 1.f ? "onednn" : "aten");
    // Weights changed in place are reordered again.
    g.initializers.at("w").mul_(-1);
    ref_g.initializers.at("w").mul_(-1);
    at::Tensor x = at::randn({3, 24});
    EXPECT_TRUE(close(fast.run({x})[0], ref.run({x})[0]));
  }
}

TEST(OneDnnConv, BatchNormalizationAfterAConcatRunsInOnePassWithItsActivation) {
  // DenseNet's layer: Concat -> BatchNormalization -> Relu -> Conv, BN not foldable into a conv;
  // and a BN straight on the (NCHW) graph input followed by a Clip.
  auto build = [](bool nhwc) {
    at::manual_seed(9);
    test::GraphBuilder b;
    auto x = b.input("x", {kDynamicDim, 6, 7, 7});
    std::vector<std::string> bn_in;
    auto bn_params = [&](const std::string& p, int64_t c) {
      return std::vector<std::string>{b.init(p + "g", at::rand({c}) + 0.5),
                                      b.init(p + "b", at::randn({c})),
                                      b.init(p + "m", at::randn({c}) * 0.3),
                                      b.init(p + "v", at::rand({c}) + 0.2)};
    };
    std::string y;
    if (nhwc) {
      auto a = b.node("Conv", {x, b.init("wa", at::randn({5, 6, 1, 1}))}, {}, "a");
      auto cat = b.node("Concat", {a, b.node("Conv", {x, b.init("wb", at::randn({3, 6, 1, 1}))},
                                             {}, "b2")},
                        {{"axis", int64_t{1}}}, "cat");
      std::vector<std::string> in{cat};
      for (auto& p : bn_params("p", 8)) in.push_back(p);
      y = b.node("BatchNormalization", in, {{"epsilon", 1e-3f}}, "bn");
      y = b.node("Relu", {y}, {}, "relu");
      y = b.node("Conv", {y, b.init("wc", at::randn({4, 8, 3, 3}))}, {}, "c");
    } else {
      std::vector<std::string> in{x};
      for (auto& p : bn_params("q", 6)) in.push_back(p);
      y = b.node("BatchNormalization", in, {}, "bn");
      y = b.node("Clip", {y, b.init("lo", at::scalar_tensor(-0.5f)),
                          b.init("hi", at::scalar_tensor(1.f))},
                 {}, "clip");
    }
    b.output(y);
    return b.build();
  };
  for (bool nhwc : {true, false}) {
    SCOPED_TRACE(nhwc ? "after a Concat of oneDNN convs (NHWC)" : "on the graph input (NCHW)");
    Graph g = build(nhwc), ref_g = build(nhwc);
    Executor fast(g), ref(ref_g);
    ref.set_onednn(false);
    fast.set_profiling(true);
    for (const auto& step : fast.plan())
      if (step.node->name == "bn") {
        EXPECT_EQ(step.engine, "slim");
        std::vector<std::string> fused;
        for (const Node* f : step.fused) fused.push_back(f->name);
        EXPECT_EQ(fused, nhwc ? (std::vector<std::string>{"cat", "relu"})
                              : (std::vector<std::string>{"clip"}));
      }
    for (int64_t n : {3, 1}) {
      at::Tensor x = at::randn({n, 6, 7, 7});
      EXPECT_TRUE(close(fast.run({x})[0], ref.run({x})[0]));
    }
    for (const auto& t : fast.profile())
      if (t.node == "bn") EXPECT_EQ(t.engine, "slim");
    // Running statistics changed in place as ATen's training batch_norm changes them: through
    // the data, the version counter unmoved.
    for (Graph* gr : {&g, &ref_g}) {
      at::Tensor& mean = gr->initializers.at(nhwc ? "pm" : "qm");
      const int64_t version = mean._version();
      float* d = mean.data_ptr<float>();
      for (int64_t k = 0; k < mean.numel(); ++k) d[k] += 1.f;
      ASSERT_EQ(mean._version(), version);
    }
    at::Tensor x = at::randn({2, 6, 7, 7});
    EXPECT_TRUE(close(fast.run({x})[0], ref.run({x})[0]));
  }
}

TEST(OneDnnConv, ConcatBeforeBatchNormalizationIsWrittenByTheBnPass) {
  // The BN pass reads the Concat's inputs and writes the concatenation normalized, in NHWC (parts
  // from oneDNN convs) and NCHW (parts from ATen): bit for bit what it computes on the Concat's
  // output when that is fetched (and so computed), close to ATen's Concat and batch_norm.
  for (bool nhwc : {true, false}) {
    SCOPED_TRACE(nhwc ? "NHWC" : "NCHW");
    auto build = [&] {
      at::manual_seed(4);
      test::GraphBuilder b;
      auto x = b.input("x", {kDynamicDim, 6, 5, 9});
      std::vector<std::string> parts;
      if (nhwc) {
        parts = {b.node("Conv", {x, b.init("wa", at::randn({5, 6, 1, 1}))}, {}, "a"),
                 b.node("Conv", {x, b.init("wb", at::randn({3, 6, 3, 3}))},
                        {{"pads", std::vector<int64_t>{1, 1, 1, 1}}}, "b"),
                 b.node("Conv", {x, b.init("wc", at::randn({17, 6, 1, 1}))}, {}, "c")};
      } else {
        parts = {x, b.node("Sigmoid", {x}, {}, "a"), x};
      }
      const int64_t ch = nhwc ? 25 : 18;
      auto cat = b.node("Concat", parts, {{"axis", int64_t{nhwc ? 1 : -3}}}, "cat");
      auto y = b.node("BatchNormalization",
                      {cat, b.init("g", at::rand({ch}) + 0.5), b.init("bb", at::randn({ch})),
                       b.init("m", at::randn({ch}) * 0.3), b.init("v", at::rand({ch}) + 0.2)},
                      {}, "bn");
      y = b.node("Relu", {y}, {}, "relu");
      b.output(y);
      return b.build();
    };
    Graph g = build(), ref_g = build();
    Executor ex(g), ref(ref_g);
    ref.set_onednn(false);
    std::vector<std::string> planned;
    for (const auto& step : ex.plan()) {
      std::string fused;
      for (const Node* f : step.fused) fused += "+" + f->name;
      planned.push_back(step.node->name + fused);
    }
    EXPECT_EQ(planned, nhwc ? (std::vector<std::string>{"a", "b", "c", "bn+cat+relu"})
                            : (std::vector<std::string>{"a", "bn+cat+relu"}));
    ex.set_profiling(true);
    for (int64_t n : {2, 1}) {
      at::Tensor x = at::randn({n, 6, 5, 9});
      at::Tensor got = ex.run({x})[0];
      if (n == 2)  // before any run that fetches the Concat's output
        for (const auto& t : ex.profile()) EXPECT_NE(t.node, "cat") << "the Concat ran";
      auto both = ex.run_named({{"x", x}}, {"cat_out", "relu_out"});
      EXPECT_TRUE(at::equal(got, both.at("relu_out")));
      EXPECT_TRUE(close(got, ref.run({x})[0]));
    }
  }
}

}  // namespace
}  // namespace slim
