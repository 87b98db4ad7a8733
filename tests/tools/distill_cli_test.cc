// End-to-end tests of `slim distill` and `slim info --values`.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "slim/data/npy.h"
#include "slim/exec/executor.h"
#include "slim/onnx/onnx_io.h"
#include "test_util.h"

namespace slim {
namespace {

namespace fs = std::filesystem;

class DistillCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir("distill_cli"));
    for (const auto& [file, args] :
         {std::pair<std::string, std::string>{"teacher.onnx", "--scale 0.5 --seed 1"},
          {"student.onnx", "--scale 0.25 --seed 2"},
          {"teacher_rgb.onnx", "--scale 0.5 --seed 1 --input 3,28,28"}}) {
      std::string input = args.find("--input") == std::string::npos ? " --input 1,28,28" : "";
      auto r = slim("zoo mobilenet_v1 --classes 10 " + args + input + " -o " + path(file));
      ASSERT_EQ(r.code, 0) << r.err;
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string path(const std::string& f) { return *dir_ + "/" + f; }
  static test::CmdResult slim(const std::string& args) {
    return test::run_cmd(test::slim_bin() + " " + args);
  }
  static std::string distill(const std::string& extra,
                             const std::string& teacher = "teacher.onnx") {
    return "distill --teacher " + path(teacher) + " --student " + path("student.onnx") +
           " --data mnist:" + test::data_dir("mnist") +
           " --max-samples 256 --batch 64 --threads 2 " + extra;
  }
  static std::string* dir_;
};
std::string* DistillCli::dir_ = nullptr;

TEST_F(DistillCli, InfoListsEveryValueWithItsShape) {
  auto r = slim("info " + path("student.onnx") + " --values --input 1,28,28");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("conv5_6_dw "), std::string::npos) << r.out;
  r = slim("info " + path("student.onnx") + " --values --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  std::map<std::string, nlohmann::json> by_name;
  for (const auto& v : j["values"]) by_name[v["name"].get<std::string>()] = v;
  ASSERT_TRUE(by_name.count("conv5_6_dw"));
  EXPECT_EQ(by_name["conv5_6_dw"]["shape"], nlohmann::json({-1, 128, 1, 1}));
  EXPECT_EQ(by_name["conv5_6_dw"]["op"], "Conv");
  EXPECT_EQ(by_name["logits"]["shape"], nlohmann::json({-1, 10}));
  EXPECT_EQ(j["values"][0]["op"], "input");
}

TEST_F(DistillCli, SoftLabelsAndAdaptedMapsTrainTheStudentAloneWhichRunsInOnnxRuntime) {
  if (test::data_dir("mnist").empty()) GTEST_SKIP() << "MNIST not set up";
  const std::string out = path("distilled.onnx");
  auto r =
      slim(distill("--loss soft_label:teacher_logits,logits:4,4,0.9 --t2-scale "
                   "--loss l2:teacher_conv5_6_dw,conv5_6_dw:0.5 --adapter --json -o " +
                   out));
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["adapters"].size(), 1u);
  EXPECT_EQ(j["adapters"][0], "conv5_6_dw: 128 -> 256 channels");
  EXPECT_EQ(j["losses"].size(), 2u);
  EXPECT_EQ(j["epochs"][0]["samples"], 256);
  // The reported evaluation is the saved student's on the test split (not the teacher's, not
  // the student before training): `slim eval` of the file gives the same numbers.
  auto e = slim("eval " + out + " --data mnist:" + test::data_dir("mnist") + " --threads 2 --json");
  ASSERT_EQ(e.code, 0) << e.err;
  auto ej = nlohmann::json::parse(e.out);
  EXPECT_EQ(j["eval"]["samples"], ej["samples"]);
  EXPECT_DOUBLE_EQ(j["eval"]["top1"].get<double>(), ej["top1"].get<double>());
  EXPECT_NEAR(j["eval"]["loss"].get<double>(), ej["loss"].get<double>(),
              1e-6 * ej["loss"].get<double>());
  auto before = slim("eval " + path("student.onnx") + " --data mnist:" + test::data_dir("mnist") +
                     " --threads 2 --json");
  ASSERT_EQ(before.code, 0) << before.err;
  EXPECT_NE(nlohmann::json::parse(before.out)["loss"], ej["loss"]) << "the student did not train";

  // The output is the student alone: same nodes and initializer names, new weights.
  Graph student = onnx_load(path("student.onnx")), got = onnx_load(out);
  ASSERT_EQ(got.nodes.size(), student.nodes.size());
  for (size_t i = 0; i < got.nodes.size(); ++i) EXPECT_EQ(got.nodes[i].name, student.nodes[i].name);
  EXPECT_EQ(got.initializers.size(), student.initializers.size());
  for (const auto& [name, t] : got.initializers) {
    EXPECT_EQ(name.rfind("teacher_", 0), std::string::npos) << name;
    ASSERT_TRUE(student.initializers.count(name)) << name;
  }
  EXPECT_FALSE(
      at::equal(got.initializers.at("conv1_weights"), student.initializers.at("conv1_weights")));

  // ONNX Runtime runs it alone and agrees with Slim.
  at::manual_seed(3);
  at::Tensor x = at::rand({4, 1, 28, 28}) * 2 - 1;
  Executor ex(got);
  at::Tensor want = ex.run({x})[0];
  at::Tensor y = test::ort_run(out, x, *dir_);
  ASSERT_TRUE(y.defined());
  EXPECT_LE(test::rel_error(y, want), 1e-5);
}

TEST_F(DistillCli, ATeacherOfAnotherOpsetIsConvertedToTheStudents) {
  // A PyTorch 1.13 export is opset 14, a zoo model 13. The zoo's ops mean the same at 14, so the
  // teacher file below is the zoo teacher declared opset 14.
  Graph t = onnx_load(path("teacher.onnx"));
  ASSERT_EQ(t.opset, 13);
  t.opset = 14;
  onnx_save(t, path("teacher14.onnx"));
  // Teacher newer: the student is converted up and saved at 14.
  const std::string common = " --data mnist:" + test::data_dir("mnist") +
                             " --max-samples 128 --batch 64 --threads 2 --no-eval";
  auto r = slim("distill --teacher " + path("teacher14.onnx") + " --student " +
                path("student.onnx") + common + " -o " + path("d14.onnx"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("note: " + path("student.onnx") +
                       ": opset 13 converted to 14 (the "
                       "teacher's) with ONNX's version converter, to distill them in one graph; "
                       "the student is saved at that opset"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(onnx_load(path("d14.onnx")).opset, 14);
  // Student newer: the teacher is converted in memory, the student keeps its opset, and the
  // student trains as with a teacher of its own opset (same seed, same data: the same file).
  Graph s = onnx_load(path("student.onnx"));
  s.opset = 14;
  onnx_save(s, path("student14.onnx"));
  r = slim("distill --teacher " + path("teacher.onnx") + " --student " + path("student14.onnx") +
           common + " -o " + path("s14.onnx"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("note: " + path("teacher.onnx") +
                       ": opset 13 converted to 14 (the "
                       "student's)"),
            std::string::npos)
      << r.err;
  auto same = slim("distill --teacher " + path("teacher14.onnx") + " --student " +
                   path("student14.onnx") + common + " -o " + path("s14_same.onnx"));
  ASSERT_EQ(same.code, 0) << same.err;
  EXPECT_EQ(same.err.find("note:"), std::string::npos) << same.err;
  EXPECT_EQ(test::read_file(path("s14.onnx")), test::read_file(path("s14_same.onnx")));
}

TEST_F(DistillCli, BadInputIsAClearErrorAndLeavesTheOutputAlone) {
  if (test::data_dir("mnist").empty()) GTEST_SKIP() << "MNIST not set up";
  const std::string out = path("keep.onnx");
  { std::ofstream(out) << "precious"; }
  auto check = [&](const std::string& extra, const std::string& want,
                   const std::string& teacher = "teacher.onnx") {
    auto r = slim(distill(extra + " -o " + out, teacher));
    EXPECT_NE(r.code, 0) << extra;
    EXPECT_NE(r.err.find(want), std::string::npos) << extra << "\n" << r.err;
    std::ifstream in(out);
    std::string content((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(content, "precious") << extra;
  };
  check("--loss l2:teacher_conv5_6_dwx,conv5_6_dw", "unknown value 'teacher_conv5_6_dwx'");
  check("--loss l2:teacher_conv5_6_dw,conv5_6_dw", "only the channels differ: --adapter");
  check("--loss l2:teacher_conv5_6_dw,logits --adapter", "has shape Nx10");
  check("--loss soft_label:logits,logits", "'logits' is not a teacher value");
  check("--loss kl:teacher_logits,logits", "unknown kind 'kl'");
  check("--loss soft_label:teacher_logits,logits", "teacher input 'image' has shape Nx3x28x28",
        "teacher_rgb.onnx");
  check("--loss soft_label:teacher_logits,logits --map img=image",
        "'img' is not an input of the teacher");
  {
    // Without --loss the single outputs are paired; a student with two cannot be.
    Graph two = onnx_load(path("student.onnx"));
    ValueInfo extra = two.outputs.at(0);
    extra.name = "conv5_6_dw";
    extra.has_shape = false;
    two.outputs.push_back(extra);
    onnx_save(two, path("two_outputs.onnx"));
    auto r =
        slim("distill --teacher " + path("teacher.onnx") + " --student " +
             path("two_outputs.onnx") + " --data mnist:" + test::data_dir("mnist") + " -o " + out);
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("distill: give --loss (the teacher has 1 outputs and the student 2"),
              std::string::npos)
        << r.err;
  }
  auto r = slim("distill --teacher " + path("nope.onnx") + " --student " + path("student.onnx") +
                " --data mnist:" + test::data_dir("mnist") +
                " --loss soft_label:teacher_logits,logits -o " + out);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("nope.onnx"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace slim
