// End-to-end tests of the `slim` binary: output formats and one-line errors with non-zero exit.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "slim/data/npy.h"
#include "slim/exec/executor.h"
#include "slim/onnx/onnx_io.h"
#include "test_util.h"

namespace slim {
namespace {

using Ints = std::vector<int64_t>;

class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir("cli"));
    at::manual_seed(0);
    test::GraphBuilder b;
    auto x = b.input("x", {kDynamicDim, 3, 8, 8});
    auto c = b.node("Conv", {x, b.init("w", at::randn({4, 3, 3, 3})), b.init("b", at::randn({4}))},
                    {{"pads", Ints{1, 1, 1, 1}}}, "conv");
    auto r = b.node("Relu", {c}, {}, "relu");
    auto p = b.node("GlobalAveragePool", {r}, {}, "gap");
    auto f = b.node("Flatten", {p}, {}, "flat");
    auto y = b.node("Gemm", {f, b.init("fc", at::randn({4, 2}))}, {}, "fc");
    b.output(y);
    onnx_save(b.build(), model());
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string model() { return *dir_ + "/small.onnx"; }
  static std::string path(const std::string& f) { return *dir_ + "/" + f; }
  static test::CmdResult slim(const std::string& args) {
    return test::run_cmd(test::slim_bin() + " " + args);
  }
  /// A failed command prints exactly one line on stderr, mentioning `needle`.
  static void expect_one_line_error(const test::CmdResult& r, const std::string& needle) {
    EXPECT_NE(r.code, 0);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
  }
  static std::string* dir_;
};
std::string* Cli::dir_ = nullptr;

TEST_F(Cli, FlopsPrintsTheInteger) {
  auto r = slim("flops " + model());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, std::to_string(8 * 8 * 4 * 27 + 4 * 2) + "\n");
  auto all = slim("flops " + model() + " --all --json");
  ASSERT_EQ(all.code, 0) << all.err;
  auto j = nlohmann::json::parse(all.out);
  EXPECT_EQ(j["flops"].get<int64_t>(), 8 * 8 * 4 * 27 + 4 * 2 + 8 * 8 * 4);  // + ReLU elements
}

TEST_F(Cli, InfoJsonIsOneObject) {
  auto r = slim("info " + model() + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);  // throws if there is anything else on stdout
  EXPECT_EQ(j["params"].get<int64_t>(), 4 * 27 + 4 + 8);
  EXPECT_EQ(j["ops"]["Conv"].get<int>(), 1);
  EXPECT_EQ(j["inputs"][0]["shape"], nlohmann::json({-1, 3, 8, 8}));
  EXPECT_EQ(j["file_bytes"].get<int64_t>(), static_cast<int64_t>(read_file(model()).size()));
  auto text = slim("info " + model() + " --graph");
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("Conv 'conv'"), std::string::npos) << text.out;
}

TEST_F(Cli, InputShapeOverride) {
  auto r = slim("flops " + model() + " --input 3,16,16");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, std::to_string(16 * 16 * 4 * 27 + 4 * 2) + "\n");
  expect_one_line_error(slim("flops " + model() + " --input 3,x,16"), "'x'");
  expect_one_line_error(slim("flops " + model() + " --input 3,8"), "has neither that rank");
  // 4 channels into a 3-channel conv: the error names the node.
  expect_one_line_error(slim("flops " + model() + " --input 4,8,8"), "Conv node 'conv'");
}

TEST_F(Cli, RunMatchesTheExecutor) {
  at::Tensor x = at::randn({2, 3, 8, 8});
  npy_save(x, path("x.npy"));
  auto r = slim("run " + model() + " --in " + path("x.npy") + " --out " + path("y.npy"));
  ASSERT_EQ(r.code, 0) << r.err;
  Graph g = onnx_load(model());
  at::Tensor want = Executor(g).run({x})[0];
  EXPECT_TRUE(at::allclose(npy_load(path("y.npy")), want, 1e-5, 1e-6));
}

// The JSON's statistics are those of its own samples, and the samples fit in the wall time of
// the command that measured them (a unit or a timer around the wrong code would not).
TEST_F(Cli, BenchJson) {
  const auto t0 = std::chrono::steady_clock::now();
  auto r = slim("bench " + model() + " --batch 4 --threads 1 --runs 7 --warmup 1 --json");
  const double wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["batch"].get<int>(), 4);
  EXPECT_EQ(j["threads"].get<int>(), 1);
  EXPECT_EQ(j["runs"].get<int>(), 7);
  auto samples = j["samples_ms"].get<std::vector<double>>();
  ASSERT_EQ(samples.size(), 7u);
  double sum = 0;
  for (double s : samples) {
    EXPECT_GT(s, 0.0);
    sum += s;
  }
  EXPECT_LT(sum, wall_ms);
  std::sort(samples.begin(), samples.end());
  EXPECT_EQ(j["median_ms"].get<double>(), samples[3]);
  EXPECT_EQ(j["min_ms"].get<double>(), samples[0]);
  EXPECT_NEAR(j["mean_ms"].get<double>(), sum / 7, 1e-9 * sum);
  EXPECT_NEAR(j["images_per_s"].get<double>(), 4 * 1000.0 / samples[3], 1e-6 * 4000 / samples[3]);
}

TEST_F(Cli, BenchProfileTimesEveryNode) {
  // Conv with its Relu fused (oneDNN), then pool, flatten and the fc (a Gemm, oneDNN's inner
  // product): four timed nodes, their mean times adding up to about the run's time.
  auto r = slim("bench " + model() + " --batch 2 --threads 1 --runs 5 --warmup 1 --json --profile");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.contains("profile")) << r.out;
  std::vector<std::string> nodes, engines;
  double sum = 0;
  for (const auto& n : j["profile"]) {
    nodes.push_back(n["node"].get<std::string>());
    engines.push_back(n["engine"].get<std::string>());
    sum += n["mean_ms"].get<double>();
  }
  EXPECT_EQ(nodes, (std::vector<std::string>{"conv", "gap", "flat", "fc"}));
  EXPECT_EQ(engines, (std::vector<std::string>{"onednn", "aten", "aten", "onednn"}));
  EXPECT_GT(sum, 0.0);
  EXPECT_LE(sum, j["mean_ms"].get<double>() * 1.01);
  // The text form: the slowest nodes and the time per op type.
  auto t = slim("bench " + model() + " --threads 1 --runs 2 --warmup 0 --profile");
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("profile: "), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("by op type:"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("Conv"), std::string::npos) << t.out;
}

TEST_F(Cli, MissingFile) { expect_one_line_error(slim("info " + path("nope.onnx")), "nope.onnx"); }

TEST_F(Cli, AFolderWhereAModelShouldBe) {
  expect_one_line_error(slim("info " + *dir_), "cannot open '" + *dir_ + "': it is a folder");
}

TEST_F(Cli, NotAnOnnxFile) {
  std::ofstream(path("text.onnx")) << "this is not a model\n";
  expect_one_line_error(slim("info " + path("text.onnx")), "not a valid ONNX model");
}

TEST_F(Cli, TruncatedFile) {
  std::string bytes = read_file(model());
  std::ofstream(path("trunc.onnx"), std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  expect_one_line_error(slim("flops " + path("trunc.onnx")), "trunc.onnx");
}

TEST_F(Cli, UnsupportedOp) {
  test::GraphBuilder b;
  auto x = b.input("x", {1, 4});
  b.output(b.node("Acos", {x}, {}, "my_acos"));
  Graph g = b.build();
  g.outputs[0].has_shape = true;  // the executor cannot infer it: Acos is not supported
  g.outputs[0].shape = {1, 4};
  onnx_save(g, path("acos.onnx"));
  auto r = slim("info " + path("acos.onnx"));
  expect_one_line_error(r, "Acos");
  EXPECT_NE(r.err.find("my_acos"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Supported ops: "), std::string::npos) << r.err;
}

TEST_F(Cli, WrongInputRankInRun) {
  npy_save(at::randn({3, 8, 8}), path("rank3.npy"));
  std::remove(path("out.npy").c_str());
  auto r = slim("run " + model() + " --in " + path("rank3.npy") + " --out " + path("out.npy"));
  expect_one_line_error(r, "expects rank 4");
  EXPECT_NE(r.err.find("'x'"), std::string::npos) << r.err;
  std::ifstream out(path("out.npy"));
  EXPECT_FALSE(out.good()) << "no output file may be left behind";
}

TEST_F(Cli, FailedRunKeepsExistingOutput) {
  std::ofstream(path("keep.npy")) << "previous";
  npy_save(at::randn({2, 5, 8, 8}), path("bad_channels.npy"));
  auto r =
      slim("run " + model() + " --in " + path("bad_channels.npy") + " --out " + path("keep.npy"));
  expect_one_line_error(r, "dim 1 must be 3");
  EXPECT_EQ(read_file(path("keep.npy")), "previous");
}

TEST_F(Cli, HelpEverywhere) {
  for (const char* cmd : {"", "info ", "flops ", "run ", "bench "}) {
    auto r = slim(std::string(cmd) + "--help");
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << cmd << r.out;
  }
  auto bad = slim("frobnicate");
  expect_one_line_error(bad, "slim: error: unknown command 'frobnicate' (commands: info, flops,");
  EXPECT_EQ(bad.code, 64);
}

TEST_F(Cli, FlagErrorsAreOneLineBeforeAnyWork) {
  // Values out of range, in words a user reads.
  auto r = slim("train " + model() + " --data mnist:x --epochs 0 -o " + path("t.onnx"));
  expect_one_line_error(r, "slim: error: --epochs: must be positive, not 0 (see --help)");
  EXPECT_EQ(r.code, 64);
  r = slim("train " + model() + " --data mnist:x --weight-decay -1 -o " + path("t.onnx"));
  expect_one_line_error(r, "--weight-decay: must be 0 or more, not -1");
  // An output in a folder that does not exist is found when the flags are read (the data spec
  // is never opened: mnist:x would fail otherwise), not after the training.
  r = slim("train " + model() + " --data mnist:x -o " + path("no_such_dir/t.onnx"));
  expect_one_line_error(r, "--output: cannot write '" + path("no_such_dir/t.onnx") + "': folder '" +
                               path("no_such_dir") + "' does not exist");
  r = slim("quant weight " + model() + " -o " + *dir_);
  expect_one_line_error(r, "--output: '" + *dir_ + "' is a folder, not a file name");
  // A missing required flag.
  r = slim("prune " + model() + " --uniform 0.5");
  expect_one_line_error(r, "--output is required");
}

}  // namespace
}  // namespace slim
