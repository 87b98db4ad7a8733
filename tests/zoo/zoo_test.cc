#include "slim/zoo/zoo.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>

#include "slim/analysis/flops.h"
#include "slim/exec/executor.h"
#include "slim/exec/infer_shapes.h"
#include "slim/onnx/onnx_io.h"
#include "test_util.h"

namespace slim {
namespace {

using Ints = std::vector<int64_t>;

ZooOptions options(Ints input, int64_t classes, double scale = 1.0, uint64_t seed = 0) {
  ZooOptions o;
  o.input = std::move(input);
  o.classes = classes;
  o.scale = scale;
  o.seed = seed;
  return o;
}

/// FLOPs after a shape-inference run, as `slim flops` computes them.
int64_t inferred_flops(const std::string& name, const ZooOptions& o) {
  Graph g = zoo_build(name, o);
  infer_shapes(g);
  return count_flops(g).total;
}

Ints shape(const Graph& g, const std::string& init) {
  auto it = g.initializers.find(init);
  EXPECT_NE(it, g.initializers.end()) << "no initializer '" << init << "'";
  return it == g.initializers.end() ? Ints{} : it->second.sizes().vec();
}

int count_ops(const Graph& g, const std::string& op) {
  auto h = g.op_histogram();
  return h.count(op) ? h.at(op) : 0;
}

using test::error_of;

#define EXPECT_ERROR_HAS(stmt, needle)                                            \
  do {                                                                            \
    std::string msg_ = error_of([&] { stmt; });                                   \
    EXPECT_NE(msg_.find(needle), std::string::npos) << "error: '" << msg_ << "'"; \
  } while (0)

TEST(Zoo, NamesInRegistryOrder) {
  EXPECT_EQ(zoo_names(), (std::vector<std::string>{"lenet", "mobilenet_v1", "mobilenet_v2",
                                                   "resnet34", "resnet50"}));
  for (const auto& n : zoo_names()) EXPECT_FALSE(zoo_describe(n).empty()) << n;
}

TEST(Zoo, PaddleSlimFlopsCheckValues) {
  // shared/REFERENCE.md: PaddleSlim's paddleslim.analysis.flops on its own models.
  EXPECT_EQ(inferred_flops("mobilenet_v1", options({1, 28, 28}, 10)), 10896832);
  EXPECT_EQ(inferred_flops("mobilenet_v1", options({3, 16, 16}, 1000)), 5110528);
  EXPECT_EQ(inferred_flops("resnet34", options({3, 16, 16}, 1000)), 29097984);
  // The builder's own value_info gives the same count without a probe run.
  EXPECT_EQ(count_flops(zoo_build("mobilenet_v1", options({1, 28, 28}, 10))).total, 10896832);
}

TEST(Zoo, LeNetFlopsOn28x28) {
  // conv1 28x28x6 x 25, conv2 10x10x16 x 150, fc 400x120 + 120x84 + 84x10.
  EXPECT_EQ(inferred_flops("lenet", options({1, 28, 28}, 10)),
            28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 + 84 * 10);
  Graph g = zoo_build("lenet", options({1, 28, 28}, 10));
  EXPECT_EQ(shape(g, "fc1_weights"), (Ints{400, 120}));
  EXPECT_EQ(shape(g, "conv1_offset"), (Ints{6}));
}

TEST(Zoo, MobileNetV1ParameterNamesArePaddleSlims) {
  Graph g = zoo_build("mobilenet_v1", options({3, 32, 32}, 10));
  std::vector<std::string> convs = {"conv1"};
  for (const char* blk :
       {"conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv4_1", "conv4_2", "conv5_1", "conv5_2",
        "conv5_3", "conv5_4", "conv5_5", "conv5_6", "conv6"}) {
    convs.push_back(std::string(blk) + "_dw");
    convs.push_back(std::string(blk) + "_sep");
  }
  ASSERT_EQ(convs.size(), 27u);
  std::set<std::string> expected = {"fc7_weights", "fc7_offset"};
  for (const auto& c : convs) {
    expected.insert(c + "_weights");
    for (const char* p : {"_bn_scale", "_bn_offset", "_bn_mean", "_bn_variance"})
      expected.insert(c + p);
    const Node* n = g.find_node(c);
    ASSERT_NE(n, nullptr) << c;
    EXPECT_EQ(n->op_type, "Conv");
    EXPECT_EQ(n->inputs, (std::vector<std::string>{n->inputs[0], c + "_weights"}));
  }
  std::set<std::string> got;
  for (const auto& [name, t] : g.initializers) got.insert(name);
  EXPECT_EQ(got, expected);
  EXPECT_EQ(count_ops(g, "Conv"), 27);
  EXPECT_EQ(count_ops(g, "BatchNormalization"), 27);
  EXPECT_EQ(shape(g, "conv1_weights"), (Ints{32, 3, 3, 3}));
  EXPECT_EQ(shape(g, "conv5_6_dw_weights"), (Ints{512, 1, 3, 3}));
  EXPECT_EQ(g.find_node("conv5_6_dw")->i("group"), 512);
  EXPECT_EQ(shape(g, "conv6_sep_weights"), (Ints{1024, 1024, 1, 1}));
  // Paddle's fc layout: weights [in, out], Gemm without transB.
  EXPECT_EQ(shape(g, "fc7_weights"), (Ints{1024, 10}));
  EXPECT_EQ(g.find_node("fc7")->i("transB", 0), 0);
  EXPECT_EQ(g.find_node("fc7")->outputs[0], "logits");
}

TEST(Zoo, MobileNetV1WidthMultiplierTruncatesLikePython) {
  Graph g = zoo_build("mobilenet_v1", options({3, 32, 32}, 10, 0.3));
  EXPECT_EQ(shape(g, "conv1_weights"), (Ints{9, 3, 3, 3}));  // int(32 * 0.3) = 9
  EXPECT_EQ(shape(g, "conv2_1_dw_weights"), (Ints{9, 1, 3, 3}));
  EXPECT_EQ(g.find_node("conv2_1_dw")->i("group"), 9);
  EXPECT_EQ(shape(g, "conv2_1_sep_weights"), (Ints{19, 9, 1, 1}));  // int(64 * 0.3) = 19
  EXPECT_EQ(shape(g, "fc7_weights"), (Ints{307, 10}));              // int(1024 * 0.3) = 307
}

TEST(Zoo, MobileNetV2Structure) {
  Graph g = zoo_build("mobilenet_v2", options({3, 32, 32}, 10));
  // 1 + 17 units x (expand, dwise, linear) + conv9; Adds in every unit but a group's first.
  EXPECT_EQ(count_ops(g, "Conv"), 53);
  EXPECT_EQ(count_ops(g, "Add"), 0 + 1 + 2 + 3 + 2 + 2 + 0);
  EXPECT_EQ(count_ops(g, "Clip"), 1 + 17 * 2 + 1);
  EXPECT_EQ(shape(g, "conv1_1_weights"), (Ints{32, 3, 3, 3}));
  EXPECT_EQ(shape(g, "conv2_1_expand_weights"), (Ints{32, 32, 1, 1}));  // t = 1 keeps it
  EXPECT_EQ(shape(g, "conv2_1_linear_weights"), (Ints{16, 32, 1, 1}));
  EXPECT_EQ(shape(g, "conv3_1_expand_weights"), (Ints{96, 16, 1, 1}));
  EXPECT_EQ(shape(g, "conv3_1_dwise_weights"), (Ints{96, 1, 3, 3}));
  EXPECT_EQ(g.find_node("conv3_1_dwise")->ints("strides"), (Ints{2, 2}));
  EXPECT_NE(g.find_node("conv3_2_add"), nullptr);
  EXPECT_EQ(g.find_node("conv3_1_add"), nullptr);
  EXPECT_EQ(shape(g, "conv8_1_linear_weights"), (Ints{320, 960, 1, 1}));
  EXPECT_EQ(shape(g, "conv9_weights"), (Ints{1280, 320, 1, 1}));
  EXPECT_EQ(shape(g, "conv9_bn_variance"), (Ints{1280}));
  EXPECT_EQ(shape(g, "fc10_weights"), (Ints{1280, 10}));
  EXPECT_EQ(shape(g, "fc10_offset"), (Ints{10}));
  // Scale: channels int(c * scale), the last conv widened only for scale > 1.
  Graph half = zoo_build("mobilenet_v2", options({3, 32, 32}, 10, 0.5));
  EXPECT_EQ(shape(half, "conv1_1_weights"), (Ints{16, 3, 3, 3}));
  EXPECT_EQ(shape(half, "conv8_1_linear_weights"), (Ints{160, 480, 1, 1}));
  EXPECT_EQ(shape(half, "conv9_weights"), (Ints{1280, 160, 1, 1}));
  Graph wide = zoo_build("mobilenet_v2", options({3, 32, 32}, 10, 1.5));
  EXPECT_EQ(shape(wide, "conv9_weights"), (Ints{1920, 480, 1, 1}));
}

TEST(Zoo, ResNetStructureAndNames) {
  Graph r34 = zoo_build("resnet34", options({3, 32, 32}, 10));
  EXPECT_EQ(count_ops(r34, "Conv"), 1 + 16 * 2 + 4);  // res2a has a shortcut conv (is_first)
  EXPECT_EQ(count_ops(r34, "Add"), 16);
  EXPECT_EQ(shape(r34, "conv1_weights"), (Ints{64, 3, 7, 7}));
  EXPECT_EQ(shape(r34, "bn_conv1_scale"), (Ints{64}));
  EXPECT_EQ(shape(r34, "res2a_branch1_weights"), (Ints{64, 64, 1, 1}));
  EXPECT_EQ(shape(r34, "bn2a_branch1_mean"), (Ints{64}));
  EXPECT_EQ(r34.initializers.count("res2b_branch1_weights"), 0u);
  EXPECT_EQ(shape(r34, "res3a_branch2a_weights"), (Ints{128, 64, 3, 3}));
  EXPECT_EQ(r34.find_node("res3a_branch2a")->ints("strides"), (Ints{2, 2}));
  EXPECT_EQ(shape(r34, "bn5c_branch2b_offset"), (Ints{512}));
  EXPECT_EQ(shape(r34, "fc_0.w_0"), (Ints{512, 10}));
  EXPECT_EQ(shape(r34, "fc_0.b_0"), (Ints{10}));
  EXPECT_EQ(r34.find_node("pool1")->ints("pads"), (Ints{1, 1, 1, 1}));
  // The residual sum goes through a ReLU (PaddleSlim 1.x's elementwise_add act='relu').
  EXPECT_EQ(r34.consumers("res2a_add").size(), 1u);
  EXPECT_EQ(r34.nodes[r34.consumers("res2a_add")[0]].op_type, "Relu");

  Graph r50 = zoo_build("resnet50", options({3, 32, 32}, 10));
  EXPECT_EQ(count_ops(r50, "Conv"), 1 + 16 * 3 + 4);
  EXPECT_EQ(shape(r50, "res2a_branch2c_weights"), (Ints{256, 64, 1, 1}));
  EXPECT_EQ(shape(r50, "res2a_branch1_weights"), (Ints{256, 64, 1, 1}));
  EXPECT_EQ(shape(r50, "res4f_branch2b_weights"), (Ints{256, 256, 3, 3}));
  EXPECT_EQ(r50.find_node("res3a_branch2b")->ints("strides"), (Ints{2, 2}));
  EXPECT_EQ(shape(r50, "bn5c_branch2c_scale"), (Ints{2048}));
  EXPECT_EQ(shape(r50, "fc_0.w_0"), (Ints{2048, 10}));
}

TEST(Zoo, WeightsInitialisedLikeTheFrameworks) {
  Graph v1 = zoo_build("mobilenet_v1", options({3, 32, 32}, 10));
  // KaimingUniform: U(+-sqrt(6 / fan_in)); 1024 x 1024 draws nearly reach the bound.
  const at::Tensor& sep = v1.initializers.at("conv6_sep_weights");
  double bound = std::sqrt(6.0 / 1024);
  EXPECT_LE(sep.abs().max().item<double>(), bound);
  EXPECT_GT(sep.abs().max().item<double>(), 0.99 * bound);
  EXPECT_NEAR(sep.std().item<double>(), bound / std::sqrt(3.0), 0.01 * bound);
  EXPECT_TRUE(at::equal(v1.initializers.at("conv3_1_dw_bn_scale"), at::ones({128})));
  EXPECT_TRUE(at::equal(v1.initializers.at("conv3_1_dw_bn_offset"), at::zeros({128})));
  EXPECT_TRUE(at::equal(v1.initializers.at("conv3_1_dw_bn_mean"), at::zeros({128})));
  EXPECT_TRUE(at::equal(v1.initializers.at("conv3_1_dw_bn_variance"), at::ones({128})));
  EXPECT_TRUE(at::equal(v1.initializers.at("fc7_offset"), at::zeros({10})));

  Graph r50 = zoo_build("resnet50", options({3, 32, 32}, 10));
  // MSRA normal: std sqrt(2 / fan_in), fan_in = 256 * 3 * 3.
  const at::Tensor& w = r50.initializers.at("res4a_branch2b_weights");
  EXPECT_NEAR(w.std().item<double>(), std::sqrt(2.0 / 2304), 0.01 * std::sqrt(2.0 / 2304));
  EXPECT_NEAR(w.mean().item<double>(), 0.0, 0.001);
  const at::Tensor& fc = r50.initializers.at("fc_0.w_0");
  EXPECT_LE(fc.abs().max().item<double>(), 1.0 / std::sqrt(2048.0));

  // Depthwise MSRA normal uses fan_in = 3 * 3 (see mobilenet_v2.cc).
  Graph v2 = zoo_build("mobilenet_v2", options({3, 32, 32}, 10));
  const at::Tensor& dw = v2.initializers.at("conv6_1_dwise_weights");  // 576 x 1 x 3 x 3
  EXPECT_NEAR(dw.std().item<double>(), std::sqrt(2.0 / 9), 0.05 * std::sqrt(2.0 / 9));
}

TEST(Zoo, SeedGivesBitIdenticalWeights) {
  for (const auto& name : zoo_names()) {
    Graph a = zoo_build(name, options({3, 32, 32}, 10, 1.0, 7));
    Graph b = zoo_build(name, options({3, 32, 32}, 10, 1.0, 7));
    Graph c = zoo_build(name, options({3, 32, 32}, 10, 1.0, 8));
    ASSERT_EQ(a.initializers.size(), b.initializers.size()) << name;
    for (const auto& [p, t] : a.initializers) {
      const at::Tensor& u = b.initializers.at(p);
      ASSERT_EQ(t.sizes(), u.sizes()) << name << " " << p;
      EXPECT_EQ(std::memcmp(t.data_ptr(), u.data_ptr(), t.nbytes()), 0) << name << " " << p;
    }
    // Every randomly drawn parameter changes with the seed (constants stay).
    int differ = 0;
    for (const auto& [p, t] : a.initializers) differ += !at::equal(t, c.initializers.at(p));
    const std::string first = name == "mobilenet_v2" ? "conv1_1_weights" : "conv1_weights";
    EXPECT_FALSE(at::equal(a.initializers.at(first), c.initializers.at(first))) << name;
    EXPECT_GT(differ, 0) << name;
  }
}

TEST(Zoo, TrainableParametersExcludeStatisticsAndClipBounds) {
  Graph g = zoo_build("mobilenet_v2", options({3, 32, 32}, 10));
  EXPECT_TRUE(g.trainable.count("conv2_1_expand_weights"));
  EXPECT_TRUE(g.trainable.count("conv2_1_expand_bn_scale"));
  EXPECT_TRUE(g.trainable.count("conv2_1_expand_bn_offset"));
  EXPECT_TRUE(g.trainable.count("fc10_weights"));
  EXPECT_FALSE(g.trainable.count("conv2_1_expand_bn_mean"));
  EXPECT_FALSE(g.trainable.count("conv2_1_expand_bn_variance"));
  EXPECT_FALSE(g.trainable.count("relu6_min"));
  EXPECT_FALSE(g.trainable.count("relu6_max"));
}

TEST(Zoo, TrainingModeReachesTheWeights) {
  Graph g = zoo_build("mobilenet_v1", options({1, 16, 16}, 4, 0.25));
  Executor ex(g);
  ex.set_training(true);
  auto y = ex.run({at::randn({2, 1, 16, 16})})[0];
  y.sum().backward();
  EXPECT_TRUE(g.initializers.at("conv1_weights").grad().defined());
  EXPECT_TRUE(g.initializers.at("conv1_bn_scale").grad().defined());
  EXPECT_TRUE(g.initializers.at("fc7_weights").grad().defined());
  // BN used batch statistics and moved its running mean away from 0.
  EXPECT_FALSE(at::equal(g.initializers.at("conv1_bn_mean"), at::zeros({8})));
}

struct ZooCase {
  std::string name;
  Ints input;
  int64_t classes;
};

class ZooModel : public ::testing::TestWithParam<ZooCase> {};

TEST_P(ZooModel, VerifiesInfersRunsAndRoundTrips) {
  const ZooCase& c = GetParam();
  Graph g = zoo_build(c.name, options(c.input, c.classes));
  ASSERT_NO_THROW(g.verify());
  EXPECT_EQ(g.name, c.name);
  EXPECT_EQ(g.opset, 13);
  ASSERT_EQ(g.inputs.size(), 1u);
  EXPECT_EQ(g.inputs[0].name, "image");
  EXPECT_EQ(g.inputs[0].shape, (Ints{kDynamicDim, c.input[0], c.input[1], c.input[2]}));
  EXPECT_EQ(g.inputs[0].dim_names[0], "N");
  ASSERT_EQ(g.outputs.size(), 1u);
  EXPECT_EQ(g.outputs[0].name, "logits");
  EXPECT_EQ(g.outputs[0].shape, (Ints{kDynamicDim, c.classes}));
  for (const auto& n : g.nodes) EXPECT_NE(n.op_type, "Softmax") << n.label();

  // The builder's value_info agrees with shape inference.
  Graph inferred = g.clone();
  infer_shapes(inferred);
  EXPECT_EQ(inferred.value_info.size(), g.value_info.size());
  for (const auto& [name, v] : inferred.value_info) {
    ASSERT_TRUE(g.value_info.count(name)) << name;
    EXPECT_EQ(g.value_info.at(name).shape, v.shape) << name;
  }
  EXPECT_EQ(inferred.outputs[0].shape, g.outputs[0].shape);
  EXPECT_EQ(count_flops(inferred).total, count_flops(g).total);

  at::manual_seed(1);
  at::Tensor x = at::randn({2, c.input[0], c.input[1], c.input[2]});
  Executor ex(g);
  at::Tensor y = ex.run({x})[0];
  EXPECT_EQ(y.sizes().vec(), (Ints{2, c.classes}));
  EXPECT_TRUE(at::isfinite(y).all().item<bool>());
  EXPECT_GT(y.abs().max().item<double>(), 0.0);

  Graph back = onnx_parse(onnx_serialize(g), c.name);
  ASSERT_NO_THROW(back.verify());
  ASSERT_EQ(back.nodes.size(), g.nodes.size());
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    EXPECT_EQ(back.nodes[k].name, g.nodes[k].name);
    EXPECT_EQ(back.nodes[k].op_type, g.nodes[k].op_type);
    EXPECT_EQ(back.nodes[k].inputs, g.nodes[k].inputs);
    EXPECT_EQ(back.nodes[k].outputs, g.nodes[k].outputs);
  }
  ASSERT_EQ(back.initializers.size(), g.initializers.size());
  for (const auto& [p, t] : g.initializers) EXPECT_TRUE(at::equal(t, back.initializers.at(p))) << p;
  EXPECT_EQ(back.inputs[0].dim_names[0], "N");
  Executor ex_back(back);
  EXPECT_TRUE(at::equal(ex_back.run({x})[0], y));
}

INSTANTIATE_TEST_SUITE_P(
    AllModels, ZooModel,
    ::testing::Values(ZooCase{"lenet", {1, 28, 28}, 10}, ZooCase{"lenet", {3, 20, 17}, 5},
                      ZooCase{"mobilenet_v1", {1, 28, 28}, 10},
                      ZooCase{"mobilenet_v1", {3, 40, 33}, 7},
                      ZooCase{"mobilenet_v2", {1, 28, 28}, 10},
                      ZooCase{"mobilenet_v2", {3, 40, 33}, 7}, ZooCase{"resnet34", {1, 28, 28}, 10},
                      ZooCase{"resnet34", {3, 40, 33}, 7}, ZooCase{"resnet50", {1, 28, 28}, 10},
                      ZooCase{"resnet50", {3, 40, 33}, 7}),
    [](const ::testing::TestParamInfo<ZooCase>& info) {
      return info.param.name + "_" + std::to_string(info.param.input[0]) + "x" +
             std::to_string(info.param.input[1]) + "x" + std::to_string(info.param.input[2]);
    });

TEST(Zoo, BadNamesAndOptionsAreErrors) {
  EXPECT_ERROR_HAS(zoo_build("vgg16", ZooOptions{}), "unknown zoo model 'vgg16'");
  EXPECT_ERROR_HAS(zoo_build("vgg16", ZooOptions{}),
                   "lenet, mobilenet_v1, mobilenet_v2, resnet34, resnet50");
  EXPECT_ERROR_HAS(zoo_describe("vgg16"), "available: lenet");
  EXPECT_ERROR_HAS(zoo_build("lenet", options({1, 28, 28}, 0)), "classes must be positive, got 0");
  EXPECT_ERROR_HAS(zoo_build("lenet", options({1, 28, 28}, -3)), "classes must be positive");
  EXPECT_ERROR_HAS(zoo_build("mobilenet_v1", options({1, 28, 28}, 10, 0.0)),
                   "scale must be positive, got 0");
  EXPECT_ERROR_HAS(zoo_build("mobilenet_v1", options({1, 28, 28}, 10, -1.0)),
                   "scale must be positive");
  EXPECT_ERROR_HAS(zoo_build("mobilenet_v1", options({1, 28, 28}, 10, NAN)),
                   "scale must be positive");
  EXPECT_ERROR_HAS(zoo_build("resnet34", options({3, 32, 32}, 10, 0.5)),
                   "resnet34 has no width multiplier");
  EXPECT_ERROR_HAS(zoo_build("mobilenet_v1", options({28, 28}, 10)),
                   "input must be C,H,W (3 dims; the batch is added), got 2 dim(s) '28,28'");
  EXPECT_ERROR_HAS(zoo_build("mobilenet_v1", options({2, 1, 28, 28}, 10)), "got 4 dim(s)");
  EXPECT_ERROR_HAS(zoo_build("mobilenet_v1", options({}, 10)), "got 0 dim(s)");
  EXPECT_ERROR_HAS(zoo_build("resnet50", options({3, 0, 28}, 10)),
                   "input dims must be positive, got '3,0,28'");
  // LeNet's unpadded conv2 and pool2 need 12x12: 8x8 leaves conv2 a 4x4 map.
  EXPECT_ERROR_HAS(zoo_build("lenet", options({1, 8, 8}, 10)), "too small");
  EXPECT_ERROR_HAS(zoo_build("lenet", options({1, 8, 8}, 10)),
                   "lenet: input 1x8x8 is too small for the network's strides: layer 'conv2' "
                   "(5x5 window, stride 1, pad 0) gets a 4x4 map");
  EXPECT_ERROR_HAS(zoo_build("lenet", options({1, 28, 11}, 10)), "'pool2'");
  EXPECT_NO_THROW(zoo_build("lenet", options({1, 12, 12}, 10)));
  // A width multiplier so small that a layer has no channels.
  EXPECT_ERROR_HAS(zoo_build("mobilenet_v1", options({1, 28, 28}, 10, 0.01)),
                   "'conv1' with no channels");
}

}  // namespace
}  // namespace slim
