// End-to-end tests of `slim quant ptq | qat | weight | embedding`: the two-step table flow, file
// sizes, and one clear line for each kind of bad input with the user's files left alone.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "slim/onnx/onnx_io.h"
#include "test_util.h"

namespace slim {
namespace {

namespace fs = std::filesystem;

class QuantCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir("quant_cli"));
    auto r =
        slim("zoo mobilenet_v1 --input 1,28,28 --classes 10 --scale 0.25 -o " + path("m.onnx"));
    ASSERT_EQ(r.code, 0) << r.err;
    r = slim("zoo mobilenet_v1 --input 1,28,28 --classes 10 -o " + path("m1.onnx"));
    ASSERT_EQ(r.code, 0) << r.err;
    test::GraphBuilder b;
    std::string x = b.input("x", {kDynamicDim, 1, 28, 28});
    b.output(b.node("Relu", {x}));
    onnx_save(b.build(), path("relu.onnx"));
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string path(const std::string& f) { return *dir_ + "/" + f; }
  static test::CmdResult slim(const std::string& args) {
    return test::run_cmd(test::slim_bin() + " " + args);
  }
  static std::string data() { return " --data mnist:" + test::data_dir("mnist"); }
  static std::string* dir_;
};
std::string* QuantCli::dir_ = nullptr;

TEST_F(QuantCli, PtqWritesATableThenAppliesItWithoutData) {
  const std::string table = path("scales.json"), q = path("q.onnx");
  auto r = slim("quant ptq " + path("m.onnx") + data() +
                " --algo kl --batches 2 --batch-size 16 --threads 2 --table " + table + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(table));
  EXPECT_FALSE(fs::exists(q));
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["calibration_samples"], 32);
  EXPECT_EQ(j["algo"], "kl");
  auto t = nlohmann::json::parse(std::ifstream(table));
  EXPECT_EQ(t["format"], "slim-scale-table");
  EXPECT_EQ(t["activations"].size(), 29u);  // 28 op inputs and the last conv's output
  EXPECT_TRUE(t["activations"]["conv1_relu"]["unsigned"].get<bool>());

  r = slim("quant ptq " + path("m.onnx") + " --table " + table + " -o " + q + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["nodes"], 28);
  Graph g = onnx_load(q);
  EXPECT_EQ(g.op_histogram()["QuantizeLinear"], 29);
  // The value names are the same at any width: the table applies to the x1.0 model too, whose
  // int8 file is at most 30% of the float one (x0.25 has more per-channel scales per weight).
  r = slim("quant ptq " + path("m1.onnx") + " --table " + table + " -o " + path("q1.onnx") +
           " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_LE(nlohmann::json::parse(r.out)["size_ratio"].get<double>(), 0.30);

  // One command that calibrates and applies, with evaluation.
  r = slim("quant ptq " + path("m.onnx") + data() +
           " --batches 1 --max-samples 16 --eval --eval-batch 500 --threads 2 -o " +
           path("q2.onnx"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("quantized test top1"), std::string::npos) << r.out;
}

TEST_F(QuantCli, WeightOnlyAndQat) {
  auto r = slim("quant weight " + path("m.onnx") + " --bits 16 -o " + path("w16.onnx") + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["weights"], 28);
  EXPECT_LT(j["size_ratio"].get<double>(), 0.6);
  r = slim("quant qat " + path("m.onnx") + data() +
           " --max-samples 128 --batch 64 --threads 2 --no-eval --act-algo range_abs_max "
           "--window-size 4 -o " +
           path("qat.onnx") + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["nodes"], 28);
  EXPECT_EQ(j["epochs"][0]["samples"], 128);
  EXPECT_EQ(onnx_load(path("qat.onnx")).op_histogram()["QuantizeLinear"], 29);
  // --float-outputs leaves the last conv's output (read by the pool only) in float.
  r = slim("quant qat " + path("m.onnx") + data() +
           " --max-samples 64 --batch 64 --threads 2 --no-eval --float-outputs -o " +
           path("qat_f.onnx"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(onnx_load(path("qat_f.onnx")).op_histogram()["QuantizeLinear"], 28);
  // With a teacher (the float model itself): the same QDQ graph, trained on another loss.
  const std::string common = data() + " --max-samples 128 --batch 64 --threads 2 --no-eval ";
  r = slim("quant qat " + path("m.onnx") + common + "-o " + path("qat_plain.onnx"));
  ASSERT_EQ(r.code, 0) << r.err;
  r = slim("quant qat " + path("m.onnx") + common + "--teacher " + path("m.onnx") +
           " --loss soft_label:teacher_" + onnx_load(path("m.onnx")).outputs[0].name + "," +
           onnx_load(path("m.onnx")).outputs[0].name + ":4,4 -o " + path("qat_kd.onnx") +
           " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["nodes"], 28);
  EXPECT_EQ(j["epochs"][0]["samples"], 128);
  Graph plain = onnx_load(path("qat_plain.onnx")), kd = onnx_load(path("qat_kd.onnx"));
  EXPECT_EQ(kd.op_histogram(), plain.op_histogram());
  EXPECT_NE(test::read_file(path("qat_kd.onnx")), test::read_file(path("qat_plain.onnx")));
}

TEST_F(QuantCli, BadInputIsOneClearLineAndLeavesFilesAlone) {
  const std::string out = path("keep.onnx");
  {
    std::ofstream f(out);
    f << "precious";
  }
  {
    std::ofstream f(path("bad.json"));
    f << "{\"format\": \"slim-scale-table\", \"activations\": {\"image\": {\"threshold\": -1}}}";
  }
  const std::string m = path("m.onnx");
  const std::string calib = data() + " --batches 1 --max-samples 16 --threads 2";
  struct Case {
    std::string args, expect;
  };
  std::vector<Case> cases = {
      {"quant ptq " + m + calib + " --weight-bits 9 -o " + out, "weight_bits is 9"},
      {"quant ptq " + m + calib + " --act-bits 1 -o " + out,
       "activation_bits must be in 2..16, got 1"},
      {"quant ptq " + m + " -o " + out, "no calibration data"},
      {"quant ptq " + m + calib, "nothing to write"},
      {"quant ptq " + path("relu.onnx") + calib + " -o " + out, "nothing to quantize"},
      {"quant ptq " + m + calib + " --not-quant-pattern . -o " + out, "nothing to quantize"},
      {"quant ptq " + m + " --table " + path("bad.json") + " -o " + out,
       "threshold must be a finite number > 0, got -1"},
      {"quant ptq " + m + " --table " + path("missing.json") + " -o " + out, "missing.json"},
      {"quant weight " + m + " --bits 17 -o " + out, "--bits must be in 2..16, got 17"},
      {"quant embedding " + m + " -o " + out, "no Gather"},
      {"quant qat " + m + data() + " --weight-bits 12 --max-samples 64 -o " + out,
       "weight_bits is 12"},
      {"quant qat " + m + data() + " --task-weight 0.5 -o " + out,
       "--loss, --task-weight and --t2-scale need --teacher"},
  };
  // An already-quantized model.
  auto r = slim("quant weight " + m + " -o " + path("w8.onnx"));
  ASSERT_EQ(r.code, 0) << r.err;
  cases.push_back({"quant ptq " + path("w8.onnx") + calib + " -o " + out, "already quantized"});
  // Refused before evaluating the float model (which would take the test split's time first),
  // naming the file.
  cases.push_back({"quant ptq " + path("w8.onnx") + calib + " --eval -o " + out,
                   "slim quant ptq: '" + path("w8.onnx") + "': the model is already quantized"});
  cases.push_back({"quant qat " + path("w8.onnx") + data() + " --max-samples 64 -o " + out,
                   "slim quant qat: '" + path("w8.onnx") + "': the model is already quantized"});
  for (const auto& c : cases) {
    r = slim(c.args);
    EXPECT_NE(r.code, 0) << c.args;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << "\n" << r.err;
    if (c.expect.find("already quantized") != std::string::npos)
      EXPECT_EQ(r.err.find("eval"), std::string::npos) << "evaluated first:\n" << r.err;
    // One error line, the last (progress lines of work done before may precede it).
    EXPECT_EQ(r.err.find("slim: error:"), r.err.rfind("slim: error:")) << r.err;
    EXPECT_EQ(r.err.find('\n', r.err.find("slim: error:")), r.err.size() - 1) << r.err;
    std::ifstream f(out);
    std::string content((std::istreambuf_iterator<char>(f)), {});
    EXPECT_EQ(content, "precious") << c.args;
  }
}

}  // namespace
}  // namespace slim
