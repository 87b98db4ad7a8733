// Agreement with PyTorch and ONNX Runtime on models exported by torch.onnx.export.
//
// tests/fixtures/export_models.py (run once per suite, cached under the build dir) exports
// torchvision resnet18/mobilenet_v2 with BN kept and BN fused, and a small CNN whose
// x.view(x.size(0), -1) exports as a Shape/Gather/Unsqueeze/Concat -> Reshape subgraph. For each:
//   - Slim's executor matches PyTorch's eager output within 1e-4 relative;
//   - onnx_save -> onnx_load is lossless (initializers bit-exact, same nodes, same outputs);
//   - ONNX Runtime (tests/fixtures/ort_run.js) on Slim's re-export matches PyTorch within 1e-4;
//   - the dynamic batch axis works: batch 1 and 3 agree row by row with batch 2 within 1e-5.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "../test_util.h"
#include "slim/data/npy.h"
#include "slim/exec/executor.h"
#include "slim/onnx/onnx_io.h"

namespace slim {
namespace {

namespace fs = std::filesystem;

constexpr double kRelTol = 1e-4;       // vs PyTorch, relative to max|reference|
constexpr double kBatchRelTol = 1e-5;  // batch 1/3 rows vs batch 2 rows

std::string fixtures_dir() { return test::binary_dir() + "/fixtures"; }
std::string fixture(const std::string& model, const std::string& suffix) {
  return fixtures_dir() + "/" + model + suffix;
}

/// Runs a shell command, returns its exit status and appends its stdout+stderr to `log`.
int run_command(const std::string& cmd, std::string* log) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) log->append(buf, n);
  int status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}


at::Tensor run_slim(Graph& g, const at::Tensor& x) {
  Executor ex(g);
  auto outs = ex.run({x});
  EXPECT_EQ(outs.size(), 1u);
  return outs.at(0);
}

/// onnx_save to a scratch path under the build dir, unique to this process; returns the path.
std::string reexport(const Graph& g, const std::string& model) {
  fs::create_directories(fixtures_dir() + "/reexport");
  std::string path =
      fixtures_dir() + "/reexport/" + model + "." + std::to_string(::getpid()) + ".onnx";
  onnx_save(g, path);
  return path;
}

/// What the tests of one model share: loading a 47 MB model and running it takes seconds, so it
/// happens once per model, whichever test asks first.
struct ModelState {
  Graph graph;
  at::Tensor x;            // batch 2 input
  at::Tensor ref;          // PyTorch eager output on x
  at::Tensor slim_y;       // Slim's output on x
  std::string reexported;  // onnx_save of graph, "" until a test asks for it
};

class AgreementTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    set_num_threads(2);
    std::string cmd = "/usr/bin/python3 " +
                      test::quote(test::source_dir() + "/tests/fixtures/export_models.py") + " " +
                      test::quote(fixtures_dir());
    export_log_ = new std::string("$ " + cmd + "\n");
    export_ok_ = run_command(cmd, export_log_) == 0;
    states_ = new std::map<std::string, ModelState>();
  }
  static void TearDownTestSuite() {
    // Re-exports are per process (ctest runs tests in parallel processes) and up to 47 MB each.
    for (const auto& [model, st] : *states_)
      if (!st.reexported.empty()) fs::remove(st.reexported);
    delete export_log_;
    delete states_;
    export_log_ = nullptr;
    states_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(export_ok_) << "exporting the PyTorch fixtures failed:\n" << *export_log_;
    model_ = GetParam();
    auto it = states_->find(model_);
    if (it == states_->end()) {
      ModelState st;
      st.graph = onnx_load(fixture(model_, ".onnx"));
      st.x = npy_load(fixture(model_, ".input.npy"));
      st.ref = npy_load(fixture(model_, ".output.npy"));
      st.slim_y = run_slim(st.graph, st.x);
      it = states_->emplace(model_, std::move(st)).first;
    }
    st_ = &it->second;
  }
  const std::string& reexported() {
    if (st_->reexported.empty()) st_->reexported = reexport(st_->graph, model_);
    return st_->reexported;
  }

  static bool export_ok_;
  static std::string* export_log_;
  static std::map<std::string, ModelState>* states_;
  std::string model_;
  ModelState* st_ = nullptr;
};

bool AgreementTest::export_ok_ = false;
std::string* AgreementTest::export_log_ = nullptr;
std::map<std::string, ModelState>* AgreementTest::states_ = nullptr;

TEST_P(AgreementTest, SlimMatchesPyTorch) {
  double err = test::rel_error(st_->slim_y, st_->ref);
  std::printf("[   info   ] %s: Slim vs PyTorch max|a-b|/max|b| = %.3g (max|b| = %.4g)\n",
              model_.c_str(), err, st_->ref.abs().max().item<double>());
  EXPECT_LE(err, kRelTol) << model_;
}

TEST_P(AgreementTest, OnnxRoundTripIsLossless) {
  const Graph& g = st_->graph;
  Graph back = onnx_load(reexported());

  ASSERT_EQ(back.initializers.size(), g.initializers.size());
  for (const auto& [name, t] : g.initializers) {
    ASSERT_TRUE(back.initializers.count(name)) << "initializer '" << name << "' was lost";
    const at::Tensor& u = back.initializers.at(name);
    ASSERT_EQ(u.scalar_type(), t.scalar_type()) << name;
    ASSERT_EQ(u.sizes(), t.sizes()) << name;
    EXPECT_EQ(std::memcmp(u.data_ptr(), t.data_ptr(), t.nbytes()), 0)
        << "initializer '" << name << "' is not bit-exact";
  }
  ASSERT_EQ(back.nodes.size(), g.nodes.size());
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    EXPECT_EQ(back.nodes[k].op_type, g.nodes[k].op_type) << "node #" << k;
    EXPECT_EQ(back.nodes[k].name, g.nodes[k].name) << "node #" << k;
    EXPECT_EQ(back.nodes[k].inputs, g.nodes[k].inputs) << g.nodes[k].label();
    EXPECT_EQ(back.nodes[k].outputs, g.nodes[k].outputs) << g.nodes[k].label();
    EXPECT_EQ(back.nodes[k].attrs.size(), g.nodes[k].attrs.size()) << g.nodes[k].label();
  }
  EXPECT_EQ(back.op_histogram(), g.op_histogram());
  ASSERT_EQ(back.inputs.size(), 1u);
  EXPECT_EQ(back.inputs[0].shape, g.inputs[0].shape);
  EXPECT_EQ(back.inputs[0].dim_names, g.inputs[0].dim_names);
  EXPECT_EQ(back.opset, g.opset);

  const at::Tensor& y = st_->slim_y;
  at::Tensor y_back = run_slim(back, st_->x);
  EXPECT_TRUE(at::equal(y, y_back)) << model_ << ": outputs differ after the round trip, max "
                                    << (y - y_back).abs().max().item<double>();
}

TEST_P(AgreementTest, OnnxRuntimeOnSlimExportMatchesPyTorch) {
  const std::string& model_path = reexported();
  std::string out_path =
      fixtures_dir() + "/reexport/" + model_ + ".ort_output." + std::to_string(::getpid()) + ".npy";
  auto r = test::ort_run_files(model_path, fixture(model_, ".input.npy"), out_path);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  at::Tensor y = npy_load(out_path);
  std::remove(out_path.c_str());
  double err = test::rel_error(y, st_->ref);
  std::printf("[   info   ] %s: ONNX Runtime (on Slim's export) vs PyTorch rel error = %.3g\n",
              model_.c_str(), err);
  EXPECT_LE(err, kRelTol) << model_;
}

TEST_P(AgreementTest, DynamicBatchAgreesRowByRow) {
  Graph& g = st_->graph;
  ASSERT_EQ(g.inputs.size(), 1u);
  ASSERT_FALSE(g.inputs[0].shape.empty());
  EXPECT_EQ(g.inputs[0].shape[0], kDynamicDim) << "batch axis was exported as fixed";
  const at::Tensor& x = st_->x;
  const at::Tensor& y2 = st_->slim_y;

  at::Tensor y1 = run_slim(g, x.narrow(0, 0, 1).contiguous());
  ASSERT_EQ(y1.size(0), 1);
  double e1 = test::rel_error(y1, y2.narrow(0, 0, 1));
  EXPECT_LE(e1, kBatchRelTol) << model_ << ": batch 1 row 0 vs batch 2 row 0";

  // Batch 3 = the batch-2 rows followed by row 0 again.
  at::Tensor x3 = at::cat({x, x.narrow(0, 0, 1)}, 0);
  at::Tensor y3 = run_slim(g, x3);
  ASSERT_EQ(y3.size(0), 3);
  double e3 = test::rel_error(y3.narrow(0, 0, 2), y2);
  double e3_row = test::rel_error(y3.narrow(0, 2, 1), y2.narrow(0, 0, 1));
  EXPECT_LE(e3, kBatchRelTol) << model_ << ": batch 3 rows 0-1 vs batch 2";
  EXPECT_LE(e3_row, kBatchRelTol) << model_ << ": batch 3 row 2 vs batch 2 row 0";
  std::printf("[   info   ] %s: batch 1 / 3 vs batch 2 rel error = %.3g / %.3g\n", model_.c_str(),
              e1, std::max(e3, e3_row));
}

INSTANTIATE_TEST_SUITE_P(PyTorch, AgreementTest,
                         ::testing::Values("resnet18_bn", "resnet18_fused", "mobilenet_v2_bn",
                                           "mobilenet_v2_fused", "small_cnn", "seg_net"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace slim
