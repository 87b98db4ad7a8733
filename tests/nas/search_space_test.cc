// NAS search spaces: the initial tokens are the networks they claim to be (torchvision's
// MobileNetV2 conv for conv, ResNet-50's bottleneck stages), and random in-range token vectors
// build at small inputs, run, and load in ONNX Runtime with Slim's outputs.
#include "slim/nas/search_space.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "slim/analysis/flops.h"
#include "slim/analysis/summary.h"
#include "slim/data/npy.h"
#include "slim/exec/executor.h"
#include "slim/onnx/onnx_io.h"
#include "slim/zoo/zoo.h"
#include "test_util.h"

namespace slim {
namespace {

ZooOptions options(std::vector<int64_t> input, int64_t classes, uint64_t seed = 0) {
  ZooOptions o;
  o.input = std::move(input);
  o.classes = classes;
  o.seed = seed;
  return o;
}

/// (weight shape, strides, pads, group) of every Conv, in graph order.
std::vector<std::string> conv_signature(const Graph& g) {
  std::vector<std::string> out;
  for (const auto& n : g.nodes) {
    if (n.op_type != "Conv") continue;
    std::string s = shape_to_string(g.initializers.at(n.inputs[1]).sizes().vec());
    for (const char* a : {"strides", "pads"}) {
      s += std::string(" ") + a;
      for (auto v : n.ints(a, {1, 1})) s += " " + std::to_string(v);
    }
    s += " group " + std::to_string(n.i("group", 1));
    out.push_back(s);
  }
  return out;
}

TEST(SearchSpace, MobileNetV2InitialTokensAreTorchvisionsMobileNetV2) {
  auto space = search_space_make("mobilenet_v2");
  ASSERT_EQ(space->init_tokens().size(), 25u);
  Graph g = space->build(space->init_tokens(), options({3, 224, 224}, 1000));
  EXPECT_EQ(count_flops(g).total, 300774272);
  // torchvision's own network, exported with BatchNormalization kept: the same convs in the
  // same order, and the same FLOPs.
  const std::string dir = test::binary_dir() + "/fixtures/nas";
  const std::string path = dir + "/torchvision_mobilenet_v2.onnx";
  auto r = test::run_cmd(
      "mkdir -p " + test::quote(dir) + " && [ -s " + test::quote(path) +
      " ] || /usr/bin/python3 -c \"import torch, torchvision, os\n"
      "m = torchvision.models.mobilenet_v2().eval()\n"
      "torch.onnx.export(m, torch.randn(1, 3, 224, 224), '" + path + ".tmp', "
      "training=torch.onnx.TrainingMode.PRESERVE)\n"
      "os.replace('" + path + ".tmp', '" + path + "')\"");
  ASSERT_EQ(r.code, 0) << r.err;
  Graph tv = load_for_analysis(path);
  EXPECT_EQ(count_flops(tv).total, 300774272);
  EXPECT_EQ(conv_signature(g), conv_signature(tv));
}

TEST(SearchSpace, ResNetInitialTokensHaveResNet50sBottleneckStages) {
  auto space = search_space_make("resnet");
  Graph g = space->build(space->init_tokens(), options({3, 224, 224}, 1000));
  Graph zoo = zoo_build("resnet50", options({3, 224, 224}, 1000));
  // Blocks per stage, from the block names res<stage><letter>_branch2a.
  std::map<char, int> blocks;
  for (const auto& n : g.nodes)
    if (n.name.size() >= 14 && n.name.rfind("res", 0) == 0 &&
        n.name.substr(5) == "_branch2a")
      ++blocks[n.name[3]];
  EXPECT_EQ(blocks, (std::map<char, int>{{'2', 3}, {'3', 4}, {'4', 6}, {'5', 3}}));
  // Every residual conv has the zoo ResNet-50's shape (the stem differs: PaddleSlim's space has
  // a 5x5 stride-2 conv and no max pool).
  int compared = 0;
  for (const auto& [name, w] : g.initializers) {
    if (name.rfind("res", 0) != 0 || name.find("_weights") == std::string::npos) continue;
    ASSERT_TRUE(zoo.initializers.count(name)) << name;
    EXPECT_EQ(w.sizes(), zoo.initializers.at(name).sizes()) << name;
    ++compared;
  }
  EXPECT_EQ(compared, 16 * 3 + 4);  // three convs per block, four projections
  EXPECT_EQ(g.initializers.at("conv1_weights").sizes(), (std::vector<int64_t>{64, 3, 5, 5}));
}

TEST(SearchSpace, MobileNetV1InitialTokensAreMobileNetV1WithReLU) {
  auto space = search_space_make("mobilenet_v1");
  ASSERT_EQ(space->init_tokens().size(), 29u);
  Graph g = space->build(space->init_tokens(), options({1, 28, 28}, 10));
  Graph zoo = zoo_build("mobilenet_v1", options({1, 28, 28}, 10));
  EXPECT_EQ(count_flops(g).total, count_flops(zoo).total);
  EXPECT_EQ(count_flops(g).total, 10896832);  // PaddleSlim's check value for its MobileNetV1
  EXPECT_EQ(conv_signature(g), conv_signature(zoo));
  int relus = 0;
  for (const auto& n : g.nodes) relus += n.op_type == "Relu";
  EXPECT_EQ(relus, 27);  // after the stem and both convs of 13 blocks
}

TEST(SearchSpace, StridesOnAOneByOneMapAreDropped) {
  // 3x3 input: the stem gives 2x2, the first stride-2 group 1x1; the later stride-2 positions
  // run at stride 1.
  auto space = search_space_make("mobilenet_v2");
  Graph g = space->build(space->init_tokens(), options({1, 3, 3}, 10));
  int strided = 0;
  for (const auto& n : g.nodes)
    if (n.op_type == "Conv") strided += n.ints("strides", {1, 1}).at(0) == 2;
  EXPECT_EQ(strided, 2);
}

TEST(SearchSpace, BadTokensAndNamesAreClearErrors) {
  auto space = search_space_make("resnet");
  EXPECT_NE(test::error_of([&] { space->build({1, 1, 2}, options({3, 32, 32}, 10)); })
                .find("resnet takes 8 tokens, got 3 ([1, 1, 2])"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              space->build({1, 1, 2, 2, 3, 13, 3, 1}, options({3, 32, 32}, 10));
            }).find("resnet: token 5 is 13, outside [0, 13)"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { search_space_make("darts"); })
                .find("unknown search space 'darts'; available: mobilenet_v2, mobilenet_v1, "
                      "resnet"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { space->build(space->init_tokens(), options({3, 0, 32}, 10)); })
                .find("input dims must be positive"),
            std::string::npos);
}

/// `var` from the environment, else `def`.
int env_count(const char* var, int def) {
  const char* env = std::getenv(var);
  return env ? std::atoi(env) : def;
}

class SearchSpaceRandom
    : public ::testing::TestWithParam<std::tuple<std::string, std::vector<int64_t>>> {};

// 200 random vectors per space and input build (structure only: weights not drawn) with an
// [N, 10] output and FLOPs; the first of them (10, or 3 of the ResNet space, whose random
// members average ~30M parameters: 6 spaces x inputs, 46 networks in all) also get weights, run
// a batch of 2 in Slim, and are saved and run by ONNX Runtime in one process, which agrees with
// Slim. SLIM_NAS_RANDOM_VECTORS and
// SLIM_NAS_RUN_VECTORS change the counts (both 200: the whole acceptance check, ~20 min).
TEST_P(SearchSpaceRandom, EveryVectorBuildsAndRunsInSlimAndOnnxRuntime) {
  const auto& [name, input] = GetParam();
  auto space = search_space_make(name);
  const Tokens range = space->range_table();
  std::mt19937_64 rng(std::hash<std::string>{}(name) + input[0]);
  const int n = env_count("SLIM_NAS_RANDOM_VECTORS", 200);
  const int run = std::min(n, env_count("SLIM_NAS_RUN_VECTORS", name == "resnet" ? 3 : 10));
  const std::string dir = test::temp_dir("nas_random_" + name + std::to_string(input[0]));
  std::vector<int64_t> shape = {2};
  shape.insert(shape.end(), input.begin(), input.end());
  at::Tensor x = at::randn(shape, at::detail::createCPUGenerator(5));
  npy_save(x, dir + "/x.npy");
  std::ofstream list(dir + "/list.txt");
  std::vector<at::Tensor> ours;
  std::set<Tokens> distinct;
  for (int i = 0; i < n; ++i) {
    Tokens t = tokens_random(range, rng);
    distinct.insert(t);
    ZooOptions o = options(input, 10, i);
    o.draw_weights = i < run;
    Graph g = space->build(t, o);
    ASSERT_EQ(g.outputs.at(0).shape, (std::vector<int64_t>{kDynamicDim, 10}))
        << tokens_to_string(t);
    ASSERT_GT(count_flops(g).total, 0) << tokens_to_string(t);
    if (i >= run) continue;
    Executor ex(g);
    at::Tensor y = ex.run({x})[0];
    ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, 10})) << tokens_to_string(t);
    ASSERT_TRUE(at::isfinite(y).all().item<bool>()) << tokens_to_string(t);
    ours.push_back(y);
    const std::string f = dir + "/" + std::to_string(i);
    onnx_save(g, f + ".onnx");
    list << f << ".onnx " << dir << "/x.npy " << f << ".out.npy\n";
  }
  list.close();
  EXPECT_GT(distinct.size(), static_cast<size_t>(n * 9 / 10));
  auto r = test::run_cmd("cd " + test::quote(test::source_dir()) + " && node " +
                         "tests/fixtures/ort_run.js --list " + test::quote(dir + "/list.txt"));
  ASSERT_EQ(r.code, 0) << r.err;
  double worst = 0;
  for (int i = 0; i < run; ++i) {
    at::Tensor o = npy_load(dir + "/" + std::to_string(i) + ".out.npy");
    worst = std::max(worst, test::rel_error(ours[i], o));
  }
  std::printf("[   info   ] %d vectors built, %d run: worst Slim vs ONNX Runtime %.2e\n", n, run,
              worst);
  EXPECT_LT(worst, 1e-4);
  std::system(("rm -rf " + test::quote(dir)).c_str());
}

INSTANTIATE_TEST_SUITE_P(
    Spaces, SearchSpaceRandom,
    ::testing::Combine(::testing::Values("mobilenet_v2", "mobilenet_v1", "resnet"),
                       ::testing::Values(std::vector<int64_t>{1, 28, 28},
                                         std::vector<int64_t>{3, 32, 32})),
    [](const auto& info) {
      return std::get<0>(info.param) + "_" + std::to_string(std::get<1>(info.param)[0]) + "x" +
             std::to_string(std::get<1>(info.param)[1]);
    });

}  // namespace
}  // namespace slim
