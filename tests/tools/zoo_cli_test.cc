// End-to-end tests of `slim zoo`: the written model measures PaddleSlim's check value with
// `slim flops`, and mistakes are one-line errors with a non-zero exit.
#include <gtest/gtest.h>

#include <algorithm>

#include "slim/onnx/onnx_io.h"
#include "slim/zoo/zoo.h"
#include "test_util.h"

namespace slim {
namespace {

test::CmdResult slim(const std::string& args) {
  return test::run_cmd(test::slim_bin() + " " + args);
}

void expect_one_line_error(const test::CmdResult& r, const std::string& needle) {
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
}

TEST(ZooCli, MobileNetV1FlopsCheckValue) {
  std::string dir = test::temp_dir("zoo_cli");
  std::string model = dir + "/mobilenet_v1.onnx";
  auto r = slim("zoo mobilenet_v1 --input 1,28,28 --classes 10 -o " + model);
  ASSERT_EQ(r.code, 0) << r.err;
  auto f = slim("flops " + model);
  ASSERT_EQ(f.code, 0) << f.err;
  EXPECT_EQ(f.out, "10896832\n");
  // The file holds the same weights as the library builds for the same seed.
  Graph g = onnx_load(model);
  ZooOptions o;
  o.input = {1, 28, 28};
  o.classes = 10;
  EXPECT_TRUE(at::equal(g.initializers.at("conv3_1_sep_weights"),
                        zoo_build("mobilenet_v1", o).initializers.at("conv3_1_sep_weights")));
}

TEST(ZooCli, SeedScaleAndListing) {
  std::string dir = test::temp_dir("zoo_cli_seed");
  auto r = slim("zoo mobilenet_v2 --input 3,32,32 --classes 5 --scale 0.5 --seed 3 -o " + dir +
                "/a.onnx");
  ASSERT_EQ(r.code, 0) << r.err;
  Graph g = onnx_load(dir + "/a.onnx");
  EXPECT_EQ(g.initializers.at("fc10_weights").sizes().vec(), (std::vector<int64_t>{1280, 5}));
  EXPECT_EQ(g.initializers.at("conv1_1_weights").size(0), 16);

  auto l = slim("zoo --list");
  ASSERT_EQ(l.code, 0) << l.err;
  for (const auto& n : zoo_names()) EXPECT_NE(l.out.find(n + "  "), std::string::npos) << l.out;
}

TEST(ZooCli, MistakesAreOneLineErrors) {
  std::string dir = test::temp_dir("zoo_cli_err");
  expect_one_line_error(slim("zoo vgg16 -o " + dir + "/x.onnx"), "available: lenet");
  expect_one_line_error(slim("zoo lenet --classes 0 -o " + dir + "/x.onnx"),
                        "classes must be positive");
  expect_one_line_error(slim("zoo lenet --input 1,8,8 -o " + dir + "/x.onnx"), "too small");
  expect_one_line_error(slim("zoo lenet --input 28,28 -o " + dir + "/x.onnx"), "C,H,W");
  expect_one_line_error(slim("zoo lenet"), "-o");
  auto ls = test::run_cmd("ls " + dir);
  EXPECT_EQ(ls.out, "");  // nothing written
}

}  // namespace
}  // namespace slim
