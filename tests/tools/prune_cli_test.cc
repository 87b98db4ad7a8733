// End-to-end tests of `slim prune`.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "slim/onnx/onnx_io.h"
#include "test_util.h"

namespace slim {
namespace {

namespace fs = std::filesystem;

class PruneCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir("prune_cli"));
    auto r = slim("zoo mobilenet_v1 --input 1,28,28 --classes 10 -o " + model());
    ASSERT_EQ(r.code, 0) << r.err;
    // The sensitivities PaddleSlim's tutorial notebook prints (ratios 0.1/0.2/0.3).
    std::ofstream(path("sens.json")) << R"({
      "conv2_2_sep_weights": {"0.1": 0.025107263, "0.2": 0.040694658, "0.3": 0.22795272},
      "conv2_1_sep_weights": {"0.1": 0.03598702, "0.2": 0.031697918, "0.3": 0.088712215},
      "conv3_1_sep_weights": {"0.1": -0.00010458791, "0.2": 0.0047076386, "0.3": 0.005439941},
      "conv4_1_sep_weights": {"0.1": 0.0015692544, "0.2": 0.0019876685, "0.3": 0.035359368},
      "conv3_2_sep_weights": {"0.1": -0.0050214026, "0.2": 0.0008369523, "0.3": 0.008055261}})";
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string model() { return *dir_ + "/mv1.onnx"; }
  static std::string path(const std::string& f) { return *dir_ + "/" + f; }
  static test::CmdResult slim(const std::string& args) {
    return test::run_cmd(test::slim_bin() + " " + args);
  }
  static std::string* dir_;
};
std::string* PruneCli::dir_ = nullptr;

TEST_F(PruneCli, TutorialRatiosAndSensitivityFile) {
  auto r = slim("prune " + model() +
                " --ratios conv2_1_sep_weights=0.3,conv2_2_sep_weights=0.3,"
                "conv3_1_sep_weights=0.20999995,conv3_2_sep_weights=0.15296294,"
                "conv4_1_sep_weights=0.18333320 -o " +
                path("p1.onnx"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("FLOPs before: 10896832"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("FLOPs after: 9588167"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("--align 8"), std::string::npos) << r.err;  // 45, 90, ... channels
  EXPECT_EQ(slim("flops " + path("p1.onnx")).out, "9588167\n");

  r = slim("prune " + model() + " --sens " + path("sens.json") + " --loss 0.01 --json -o " +
           path("p2.onnx"));
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["flops_after"], 9777980);
  EXPECT_NEAR(j["ratios"]["conv4_1_sep_weights"].get<double>(), 0.22400936122727166, 1e-6);
  EXPECT_EQ(j["pruned"].size(), 3u);
  EXPECT_TRUE(j["skipped"].empty());

  r = slim("prune " + model() + " --flops-target 0.5 --align 8 --json -o " + path("p3.onnx"));
  ASSERT_EQ(r.code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_LE(j["flops_after"].get<double>(), 0.5 * 10896832);
  EXPECT_TRUE(j["unaligned"].empty());
  EXPECT_EQ(r.err, "");
}

TEST_F(PruneCli, BadInputIsOneLineAndLeavesFilesAlone) {
  const std::string out = path("keep.onnx");
  std::ofstream(out) << "precious";
  auto expect_error = [&](const std::string& args, const std::string& needle) {
    auto r = slim("prune " + model() + " " + args + " -o " + out);
    EXPECT_NE(r.code, 0) << args;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    std::ifstream f(out);
    std::string content((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    EXPECT_EQ(content, "precious") << args;
  };
  expect_error("--ratios conv2_1_sep_weights=1.0", "[0, 1)");
  expect_error("--ratios conv2_1_sep_weights=abc", "'abc' is not a number");
  expect_error("--ratios nope=0.2", "unknown param 'nope'");
  expect_error("--ratios conv1_bn_scale=0.2", "not a Conv weight");
  expect_error("--ratios conv3_1_dw_weights=0.2", "follow its input");
  std::ofstream(path("bad.json")) << "{\"conv2_1_sep_weights\": {\"0.1\": ";
  expect_error("--sens " + path("bad.json") + " --loss 0.01", "bad.json");
  expect_error("", "say what to prune");
  expect_error("--flops-target 0.5 --sens " + path("sens.json"), "reach at most");
}

}  // namespace
}  // namespace slim
