// End-to-end tests of `slim sensitivity`, `slim sensitivity merge` and `slim ratios`.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "slim/onnx/onnx_io.h"
#include "slim/prune/sensitivity.h"
#include "test_util.h"

namespace slim {
namespace {

using test::write_text;

using Ints = std::vector<int64_t>;

class SensitivityCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir("sensitivity_cli"));
    // A small MNIST-shaped CNN with random weights: conv1 -> BN -> ReLU -> conv2 -> ReLU -> GAP
    // -> fc. Its accuracy is near chance, which is enough to exercise the command.
    at::manual_seed(1);
    test::GraphBuilder b;
    auto x = b.input("image", {kDynamicDim, 1, 28, 28});
    auto c1 =
        b.node("Conv", {x, b.init("w1", at::randn({8, 1, 3, 3})), b.init("b1", at::zeros({8}))},
               {{"pads", Ints{1, 1, 1, 1}}, {"strides", Ints{2, 2}}}, "conv1");
    auto bn = b.node("BatchNormalization",
                     {c1, b.init("s1", at::ones({8})), b.init("o1", at::zeros({8})),
                      b.init("m1", at::zeros({8})), b.init("v1", at::ones({8}))},
                     {}, "bn1");
    auto r1 = b.node("Relu", {bn}, {}, "relu1");
    auto c2 = b.node(
        "Conv", {r1, b.init("w2", at::randn({8, 8, 3, 3}) * 0.3), b.init("b2", at::zeros({8}))},
        {{"pads", Ints{1, 1, 1, 1}}, {"strides", Ints{2, 2}}}, "conv2");
    auto r2 = b.node("Relu", {c2}, {}, "relu2");
    auto p = b.node("GlobalAveragePool", {r2}, {}, "gap");
    auto f = b.node("Flatten", {p}, {}, "flat");
    auto y = b.node("Gemm", {f, b.init("fw", at::randn({8, 10})), b.init("fb", at::randn({10}))},
                    {}, "fc");
    b.output(y);
    onnx_save(b.build(), model());
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string model() { return *dir_ + "/cnn.onnx"; }
  static std::string path(const std::string& f) { return *dir_ + "/" + f; }
  static std::string data() { return "mnist:" + test::data_dir("mnist"); }
  static test::CmdResult slim(const std::string& args) {
    return test::run_cmd(test::slim_bin() + " " + args);
  }
  /// `slim sensitivity` on the test model with a small evaluation subset.
  static test::CmdResult sens(const std::string& args) {
    return slim("sensitivity " + model() + " --data " + data() +
                " --max-samples 200 --batch 100 --threads 1 " + args);
  }
  /// A failed command prints exactly one line on stderr, mentioning `needle`.
  static void expect_one_line_error(const test::CmdResult& r, const std::string& needle) {
    EXPECT_NE(r.code, 0);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
  }
  static std::string* dir_;
};
std::string* SensitivityCli::dir_ = nullptr;

TEST_F(SensitivityCli, BadInputIsOneLineAndKeepsTheFile) {
  std::string out = path("keep.json");
  const std::string saved = "{\"w1\": {\"0.1\": 0.25}}";
  write_text(out, saved);
  expect_one_line_error(sens("--params w1 --ratios 0.1,1.0 -o " + out),
                        "ratio 1 is outside [0, 1)");
  expect_one_line_error(sens("--params w1 --ratios -0.1 -o " + out), "ratio -0.1 is outside");
  expect_one_line_error(sens("--params w1,nope -o " + out), "nope");
  expect_one_line_error(sens("--params s1 -o " + out), "s1");  // a BN scale, not a conv weight
  expect_one_line_error(sens("--params-regex 'conv.*' -o " + out), "'conv.*'");
  expect_one_line_error(sens("--params w1 --shard 1of2 -o " + out), "'1of2'");
  EXPECT_EQ(read_file(out), saved);

  std::string corrupt = path("corrupt.json");
  const std::string broken = "{\"w1\": {\"0.1\": 0.25}";
  write_text(corrupt, broken);
  expect_one_line_error(sens("--params w1 --ratios 0.1,0.2 -o " + corrupt), corrupt);
  expect_one_line_error(slim("ratios --sens " + corrupt + " --loss 0.01"), corrupt);
  expect_one_line_error(slim("sensitivity merge " + out + " " + corrupt + " -o " + out), corrupt);
  EXPECT_EQ(read_file(corrupt), broken);
  EXPECT_EQ(read_file(out), saved);
}

TEST_F(SensitivityCli, RunShardAndMerge) {
  std::string whole = path("whole.json");
  auto r = sens("--params-regex 'w[12]' --ratios 0,0.5 -o " + whole);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("sensitivity 4/4 w2@0.5: top1 "), std::string::npos) << r.err;
  Sensitivities s = sensitivity_load(whole);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s.at("w1").size(), 2u);
  EXPECT_EQ(s.at("w1").at(0.0), 0.0);
  EXPECT_EQ(s.at("w2").at(0.0), 0.0);
  // Rerunning finds everything done and evaluates nothing.
  r = sens("--params w1,w2 --ratios 0,0.5 -o " + whole);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find("top1"), std::string::npos) << r.err;

  for (int i = 0; i < 2; ++i) {
    r = sens("--params w1,w2 --ratios 0,0.5 --shard " + std::to_string(i) + "/2 -o " +
             path("part" + std::to_string(i) + ".json"));
    ASSERT_EQ(r.code, 0) << r.err;
  }
  r = slim("sensitivity merge " + path("part0.json") + " " + path("part1.json") + " -o " +
           path("merged.json"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(sensitivity_load(path("merged.json")), s);
}

TEST_F(SensitivityCli, RatiosJsonAndText) {
  std::string f = path("tutorial.json");
  write_text(f, R"({
    "conv2_1_sep_weights": {"0.1": 0.001, "0.2": 0.002, "0.3": 0.004},
    "conv4_1_sep_weights": {"0.3": 0.0353594, "0.2": 0.0019877},
    "conv5_1_sep_weights": {"0.1": 0.2}
  })");
  auto r = slim("ratios --sens " + f + " --loss 0.01 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j.size(), 2u) << r.out;
  EXPECT_EQ(j["conv2_1_sep_weights"].get<double>(), 0.3);
  EXPECT_NEAR(j["conv4_1_sep_weights"].get<double>(), 0.2240094, 1e-6);
  EXPECT_FALSE(j.contains("conv5_1_sep_weights"));
  EXPECT_NE(r.err.find("conv5_1_sep_weights left out"), std::string::npos) << r.err;
  // Full double precision: the printed value is the computed one.
  EXPECT_EQ(j["conv4_1_sep_weights"].get<double>(),
            ratios_by_loss(sensitivity_load(f), 0.01).at("conv4_1_sep_weights"));

  auto t = slim("ratios --sens " + f + " --loss 0.01");
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_EQ(t.out.rfind("conv2_1_sep_weights 0.3\nconv4_1_sep_weights 0.224009", 0), 0u) << t.out;
  expect_one_line_error(slim("ratios --sens " + path("absent.json") + " --loss 0.01"),
                        "absent.json");
}

}  // namespace
}  // namespace slim
