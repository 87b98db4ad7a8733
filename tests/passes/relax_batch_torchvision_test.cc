// relax_batch on what users export: torchvision networks and every model of tests/fixtures
// through PyTorch's plain torch.onnx.export (batch fixed at 1;
// tests/fixtures/export_plain_models.py). At batch 4 the relaxed model gives the outputs of four
// batch-1 runs of the original, in Slim and in ONNX Runtime (which runs the file Slim saves).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "slim/exec/executor.h"
#include "slim/exec/infer_shapes.h"
#include "slim/onnx/onnx_io.h"
#include "slim/passes/relax_batch.h"
#include "test_util.h"

namespace slim {
namespace {

// Every file export_plain_models.py writes (a test below checks that none is missed).
const std::vector<std::string> kModels = {
    // torchvision, default export (BN folded) and BN kept
    "resnet18", "mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x1_0", "densenet121",
    "efficientnet_b0", "resnet18_bn", "mobilenet_v3_small_bn",
    // the models of tests/fixtures (export_models.py, export_prune_models.py, export_mnist_cnn.py)
    "fixture_resnet18_bn", "fixture_resnet18_fused", "fixture_mobilenet_v2_bn",
    "fixture_mobilenet_v2_fused", "fixture_small_cnn", "fixture_seg_net", "fixture_prune_resnet18",
    "fixture_prune_mobilenet_v2", "fixture_prune_densenet121", "fixture_prune_efficientnet_b0",
    "fixture_prune_shufflenet_v2_x1_0", "fixture_mnist_cnn"};

std::string plain_dir() { return test::binary_dir() + "/fixtures/plain"; }

class RelaxBatchPlainExport : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    const std::string script = test::source_dir() + "/tests/fixtures/export_plain_models.py";
    auto r = test::run_cmd("/usr/bin/python3 " + test::quote(script) + " " +
                           test::quote(plain_dir()));
    ASSERT_EQ(r.code, 0) << r.out << r.err;
  }
};

/// max |a - b| / max(1, max |b|).
double rel_err(const at::Tensor& a, const at::Tensor& b) {
  const double scale = std::max(1.0, b.abs().max().item<double>());
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>() / scale;
}

/// [4, dims of `shape` after the first].
std::vector<int64_t> batch_of_four(std::vector<int64_t> shape) {
  shape.at(0) = 4;
  return shape;
}

TEST(RelaxBatchPlainExportFiles, EveryExportedModelIsChecked) {
  auto r = test::run_cmd("/usr/bin/python3 " +
                         test::quote(test::source_dir() + "/tests/fixtures/export_plain_models.py") +
                         " " + test::quote(plain_dir()));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  std::set<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(plain_dir()))
    if (e.path().extension() == ".onnx") files.insert(e.path().stem().string());
  EXPECT_EQ(files, std::set<std::string>(kModels.begin(), kModels.end()));
}

TEST_P(RelaxBatchPlainExport, FourSamplesAtOnceEqualFourBatchOneRunsInSlimAndOnnxRuntime) {
  const std::string name = GetParam();
  const std::string path = plain_dir() + "/" + name + ".onnx";
  Graph original = onnx_load(path);
  ASSERT_EQ(original.inputs.size(), 1u);
  ASSERT_EQ(original.inputs[0].shape.at(0), 1) << "not a plain export";
  ASSERT_EQ(original.outputs.size(), 1u);
  Graph g = original.clone();
  RelaxBatchReport r = relax_batch(g);
  ASSERT_TRUE(r.relaxed) << r.reason;
  std::printf("[   info   ] %s: %d Reshape target(s) rewritten\n", name.c_str(), r.reshapes);

  at::Tensor x =
      at::randn(batch_of_four(original.inputs[0].shape), at::detail::createCPUGenerator(7));
  Executor one(original), four(g);
  at::Tensor y4 = four.run({x})[0];
  std::vector<at::Tensor> singles;
  for (int64_t i = 0; i < 4; ++i) singles.push_back(one.run({x.slice(0, i, i + 1)})[0]);
  at::Tensor y1 = at::cat(singles, 0);
  ASSERT_EQ(y4.sizes(), batch_of_four(singles[0].sizes().vec()));
  // oneDNN blocks a batch of 4 differently from a batch of 1: last-bit differences only.
  EXPECT_LT(rel_err(y4, y1), 1e-5) << "Slim";

  // ONNX Runtime: the relaxed file at a batch of 4 and the original on each sample, in one node
  // process (one per run cost ~0.25 s each, most of this suite's time).
  const std::string dir = test::temp_dir("relax_" + name);
  onnx_save(g, dir + "/relaxed.onnx");
  std::ofstream list(dir + "/list.txt");
  npy_save(x, dir + "/x4.npy");
  list << dir << "/relaxed.onnx " << dir << "/x4.npy " << dir << "/o4.npy\n";
  for (int64_t i = 0; i < 4; ++i) {
    const std::string xi = dir + "/x" + std::to_string(i) + ".npy";
    npy_save(x.slice(0, i, i + 1).contiguous(), xi);
    list << path << " " << xi << " " << dir << "/o1_" << i << ".npy\n";
  }
  list.close();
  auto ort =
      test::run_cmd("cd " + test::quote(test::source_dir()) +
                    " && NODE_PATH=" + test::quote(test::source_dir() + "/node_modules") +
                    " node tests/fixtures/ort_run.js --list " + test::quote(dir + "/list.txt"));
  ASSERT_EQ(ort.code, 0) << ort.out << ort.err;
  at::Tensor o4 = npy_load(dir + "/o4.npy");
  ASSERT_EQ(o4.sizes(), y4.sizes());
  std::vector<at::Tensor> o1;
  for (int64_t i = 0; i < 4; ++i) o1.push_back(npy_load(dir + "/o1_" + std::to_string(i) + ".npy"));
  EXPECT_LT(rel_err(o4, at::cat(o1, 0)), 1e-5) << "ONNX Runtime";
  EXPECT_LT(rel_err(y4, o4), 1e-4) << "Slim against ONNX Runtime";
}

INSTANTIATE_TEST_SUITE_P(Plain, RelaxBatchPlainExport, ::testing::ValuesIn(kModels),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace slim
