// Channel pruning of PyTorch-exported torchvision models (issue 4 acceptance).
//
// tests/fixtures/export_prune_models.py (run once per suite, cached under the build dir) exports
// resnet18, mobilenet_v2, densenet121, efficientnet_b0 and shufflenet_v2_x1_0 with random
// weights and BN kept. For each, every prunable group is pruned at 0.3:
//   - really and lazily (the same filters zeroed, shapes kept): Slim's executor gives the same
//     output within 1e-4 relative. Any channel cut inconsistently between coupled weights (a
//     residual Add, a Concat offset, a depthwise conv, a squeeze-excitation Mul) changes the
//     function, so this is the "no group pruned wrongly" check;
//   - FLOPs are strictly lower;
//   - ONNX Runtime runs onnx_save of the pruned graph with the unpruned output shape and agrees
//     with Slim's output on it within 1e-4 relative.
// The analysis test pins what each architecture must couple or skip, and prints skipped groups.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "slim/analysis/flops.h"
#include "slim/analysis/model_stats.h"
#include "slim/analysis/summary.h"
#include "slim/data/npy.h"
#include "slim/exec/executor.h"
#include "slim/onnx/onnx_io.h"
#include "slim/prune/channel_groups.h"
#include "slim/prune/prune_channels.h"
#include "test_util.h"

namespace slim {
namespace {

namespace fs = std::filesystem;

constexpr double kRatio = 0.3;
constexpr double kRelTol = 1e-4;  // relative to max|reference|

std::string fixtures_dir() { return test::binary_dir() + "/fixtures/prune"; }
std::string fixture(const std::string& model, const std::string& suffix) {
  return fixtures_dir() + "/" + model + suffix;
}

at::Tensor run_slim(Graph& g, const at::Tensor& x) {
  Executor ex(g);
  at::NoGradGuard ng;
  auto outs = ex.run({x});
  EXPECT_EQ(outs.size(), 1u);
  return outs.at(0);
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// What the tests of one model share; loading densenet121 takes seconds, so it happens once.
struct ModelState {
  Graph graph;  // load_for_analysis of the export
  ChannelAnalysis analysis;
};

class PruneTorchvisionTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    set_num_threads(2);
    std::string cmd = "/usr/bin/python3 " +
                      test::quote(test::source_dir() + "/tests/fixtures/export_prune_models.py") + " " +
                      test::quote(fixtures_dir());
    auto r = test::run_cmd(cmd);
    export_log_ = new std::string("$ " + cmd + "\n" + r.out + r.err);
    export_ok_ = r.code == 0;
    states_ = new std::map<std::string, ModelState>();
  }
  static void TearDownTestSuite() {
    delete export_log_;
    delete states_;
    export_log_ = nullptr;
    states_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(export_ok_) << "exporting the torchvision fixtures failed:\n" << *export_log_;
    model_ = GetParam();
    auto it = states_->find(model_);
    if (it == states_->end()) {
      ModelState st;
      st.graph = load_for_analysis(fixture(model_, ".onnx"));
      st.analysis = analyze_channel_groups(st.graph);
      it = states_->emplace(model_, std::move(st)).first;
    }
    st_ = &it->second;
  }

  /// The group whose sources include conv weight `param`.
  const ChannelGroup& group_of(const std::string& param) {
    auto it = st_->analysis.group_of_source.find(param);
    SLIM_ASSERT(it != st_->analysis.group_of_source.end(), model_, ": '", param,
                "' is not a source of any group");
    return st_->analysis.groups.at(it->second);
  }

  static bool export_ok_;
  static std::string* export_log_;
  static std::map<std::string, ModelState>* states_;
  std::string model_;
  ModelState* st_ = nullptr;
};

bool PruneTorchvisionTest::export_ok_ = false;
std::string* PruneTorchvisionTest::export_log_ = nullptr;
std::map<std::string, ModelState>* PruneTorchvisionTest::states_ = nullptr;

TEST_P(PruneTorchvisionTest, AnalysisCouplesAndSkipsAsExpected) {
  const auto& groups = st_->analysis.groups;
  int prunable = 0;
  for (const auto& grp : groups) {
    if (grp.prunable) {
      ++prunable;
      continue;
    }
    std::printf("[   info   ] %s: skipped group of %zu conv(s) %s... (%lld channels): %s\n",
                model_.c_str(), grp.sources.size(), grp.sources.front().c_str(),
                static_cast<long long>(grp.channels), grp.reason.c_str());
  }
  std::printf("[   info   ] %s: %zu groups, %d prunable, %zu skipped\n", model_.c_str(),
              groups.size(), prunable, groups.size() - prunable);
  ASSERT_GT(prunable, 0);

  auto expect_tied = [&](const std::string& a, const std::vector<std::string>& others) {
    const ChannelGroup& grp = group_of(a);
    EXPECT_TRUE(grp.prunable) << a << ": " << grp.reason;
    for (const auto& b : others) EXPECT_TRUE(contains(grp.sources, b)) << a << " not tied to " << b;
  };

  if (model_ == "shufflenet_v2_x1_0") {
    // The last conv of every branch feeds Concat -> channel shuffle (Reshape/Transpose/Reshape);
    // everything else (stem, the first convs of branch2 through the depthwise conv, conv5) can go.
    for (const auto& grp : groups) {
      if (grp.prunable) continue;
      EXPECT_TRUE(grp.reason.find("Reshape") != std::string::npos ||
                  grp.reason.find("Transpose") != std::string::npos)
          << grp.sources.front() << ": " << grp.reason;
      for (const auto& s : grp.sources)
        EXPECT_TRUE(ends_with(s, "branch1.2.weight") || ends_with(s, "branch2.5.weight")) << s;
    }
    EXPECT_FALSE(group_of("stage2.0.branch2.5.weight").prunable);
    EXPECT_FALSE(group_of("stage3.1.branch2.5.weight").prunable);
    EXPECT_FALSE(group_of("stage2.0.branch1.2.weight").prunable);
    EXPECT_TRUE(group_of("conv1.0.weight").prunable);
    EXPECT_TRUE(group_of("stage3.1.branch2.0.weight").prunable);
    EXPECT_TRUE(group_of("conv5.0.weight").prunable);
    return;
  }

  // Every other architecture has nothing Slim must refuse.
  EXPECT_EQ(prunable, static_cast<int>(groups.size()));
  if (model_ == "resnet18") {
    // Residual Adds tie the stem (or a stage's downsample) to every block's conv2.
    expect_tied("conv1.weight", {"layer1.0.conv2.weight", "layer1.1.conv2.weight"});
    for (const char* l : {"layer2", "layer3", "layer4"})
      expect_tied(std::string(l) + ".0.downsample.0.weight",
                  {std::string(l) + ".0.conv2.weight", std::string(l) + ".1.conv2.weight"});
    EXPECT_EQ(groups.size(), 12u);  // 20 convs, 8 tied by the residuals
  } else if (model_ == "mobilenet_v2") {
    // Inverted residuals tie the projections of a stage; the depthwise convs follow the
    // expansion convs (they are not sources).
    expect_tied("features.2.conv.2.weight", {"features.3.conv.2.weight"});
    expect_tied("features.4.conv.2.weight",
                {"features.5.conv.2.weight", "features.6.conv.2.weight"});
    EXPECT_EQ(st_->analysis.group_of_source.count("features.2.conv.1.0.weight"), 0u);
  } else if (model_ == "densenet121") {
    // Every layer's conv2 output is Concatenated into all later layers of its block: each is
    // its own group, cut through channel offsets of every later Concat and BN.
    EXPECT_EQ(groups.size(), 120u);
    EXPECT_TRUE(group_of("features.denseblock1.denselayer1.conv2.weight").prunable);
    EXPECT_TRUE(group_of("features.conv0.weight").prunable);
    EXPECT_TRUE(group_of("features.transition1.conv.weight").prunable);
  } else if (model_ == "efficientnet_b0") {
    // Squeeze-excitation: sigmoid(fc2(...)) * trunk ties fc2 to the conv whose channels the
    // depthwise conv carries: the block's expansion conv, or the stem for stage 1.
    int se = 0;
    for (const auto& [param, id] : st_->analysis.group_of_source) {
      if (!ends_with(param, "fc2.weight")) continue;
      ++se;
      const std::string block = param.substr(0, param.size() - std::string("1.fc2.weight").size());
      const std::string trunk = block == "features.1.0.block." ? std::string("features.0.0.weight")
                                                               : block + "0.0.weight";
      expect_tied(param, {trunk});
      EXPECT_EQ(groups[id].sources.size(), 2u) << param;
    }
    EXPECT_EQ(se, 16);
    expect_tied("features.2.0.block.3.0.weight", {"features.2.1.block.3.0.weight"});
  }
}

TEST_P(PruneTorchvisionTest, PruneThirtyPercentMatchesLazyAndOnnxRuntime) {
  const auto t0 = std::chrono::steady_clock::now();
  const Graph& g = st_->graph;
  PruneOptions opts;
  for (const auto& p : prunable_params(g)) opts.ratios[p] = kRatio;
  ASSERT_FALSE(opts.ratios.empty());

  Graph real = g.clone(), lazy = g.clone(), orig = g.clone();
  PruneReport report = prune_channels(real, opts);
  PruneOptions lazy_opts = opts;
  lazy_opts.lazy = true;
  prune_channels(lazy, lazy_opts);
  EXPECT_EQ(report.pruned.size(), opts.ratios.size()) << "a group too small to prune at 0.3?";
  int64_t skipped_sources = 0;
  for (const auto& s : report.skipped) skipped_sources += static_cast<int64_t>(s.params.size());

  const at::Tensor x = npy_load(fixture(model_, ".input.npy"));
  const at::Tensor ref = npy_load(fixture(model_, ".output.npy"));
  const at::Tensor y_orig = run_slim(orig, x);
  const at::Tensor y_real = run_slim(real, x);
  const at::Tensor y_lazy = run_slim(lazy, x);
  const double err_torch = test::rel_error(y_orig, ref);
  EXPECT_LE(err_torch, kRelTol) << "unpruned model: Slim vs PyTorch";
  EXPECT_EQ(y_real.sizes(), ref.sizes());
  const double err_lazy = test::rel_error(y_real, y_lazy);
  EXPECT_LE(err_lazy, kRelTol) << "pruned vs lazily pruned: a group was cut inconsistently";
  EXPECT_GT(test::rel_error(y_lazy, y_orig), 1e-3) << "pruning changed nothing";

  const int64_t flops_before = count_flops(g).total, flops_after = count_flops(real).total;
  EXPECT_LT(flops_after, flops_before);
  EXPECT_EQ(count_flops(lazy).total, flops_before) << "lazy pruning must keep shapes";
  const int64_t params_before = count_params(g).count, params_after = count_params(real).count;
  EXPECT_LT(params_after, params_before);

  // ONNX Runtime on the saved pruned model.
  fs::create_directories(fixtures_dir() + "/pruned");
  const std::string stem = fixtures_dir() + "/pruned/" + model_ + "." + std::to_string(::getpid());
  const std::string model_path = stem + ".onnx", out_path = stem + ".ort_output.npy";
  onnx_save(real, model_path);
  auto r = test::ort_run_files(model_path, fixture(model_, ".input.npy"), out_path);
  fs::remove(model_path);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const at::Tensor y_ort = npy_load(out_path);
  fs::remove(out_path);
  EXPECT_EQ(y_ort.sizes(), ref.sizes()) << "ONNX Runtime output shape differs from the unpruned";
  const double err_ort = test::rel_error(y_ort, y_real);
  EXPECT_LE(err_ort, kRelTol) << "ONNX Runtime vs Slim on the pruned model";

  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "[   info   ] %s: pruned %zu groups, skipped %zu (%lld convs); FLOPs %lld -> %lld (%.1f%%), "
      "params %lld -> %lld; rel err Slim vs PyTorch %.2g, real vs lazy %.2g, ORT vs Slim %.2g; "
      "%.1f s\n",
      model_.c_str(), report.pruned.size(), report.skipped.size(),
      static_cast<long long>(skipped_sources), static_cast<long long>(flops_before),
      static_cast<long long>(flops_after), 100.0 * flops_after / flops_before,
      static_cast<long long>(params_before), static_cast<long long>(params_after), err_torch,
      err_lazy, err_ort, secs);
}

// The pruned network against an independent computation: PyTorch running the same torchvision
// module with its weights sliced by hand (tests/fixtures/torch_pruned_reference.py), the removed
// filters chosen there by L1 norm and the coupling written out from torchvision's module
// structure. Groups of every kind the two networks have: a block-internal conv, residual stage
// channels through the stem, downsample shortcuts and the fc, an expansion conv through a
// depthwise conv, and mobilenet_v2's residual projection pair.
class PruneTorchvisionReference : public PruneTorchvisionTest {};

TEST_P(PruneTorchvisionReference, PrunedOutputEqualsPyTorchWithSlicedWeights) {
  const std::map<std::string, std::map<std::string, double>> ratios = {
      {"resnet18",
       {{"layer1.0.conv1.weight", 0.3},
        {"conv1.weight", 0.25},
        {"layer2.1.conv1.weight", 0.4},
        {"layer3.0.conv2.weight", 0.5},
        {"layer4.0.conv2.weight", 0.3}}},
      {"mobilenet_v2",
       {{"features.2.conv.0.0.weight", 0.3},
        {"features.2.conv.2.weight", 0.25},
        {"features.7.conv.0.0.weight", 0.5},
        {"features.10.conv.0.0.weight", 0.5},
        {"features.14.conv.0.0.weight", 0.5},
        {"features.17.conv.0.0.weight", 0.5}}}};
  PruneOptions opts;
  opts.ratios = ratios.at(model_);
  Graph real = st_->graph.clone();
  const PruneReport report = prune_channels(real, opts);
  ASSERT_EQ(report.pruned.size(), opts.ratios.size());

  const std::string dir = test::temp_dir("prune_reference_" + model_);
  nlohmann::json j(opts.ratios);
  {
    std::ofstream f(dir + "/ratios.json");
    f << j.dump();
  }
  auto r = test::run_cmd(
      "/usr/bin/python3 " + test::quote(test::source_dir() + "/tests/fixtures/torch_pruned_reference.py") +
      " " + model_ + " " + test::quote(dir + "/ratios.json") + " " +
      test::quote(fixture(model_, ".input.npy")) + " " + test::quote(dir + "/ref.npy"));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  // The same filters on both sides.
  const auto removed = nlohmann::json::parse(r.out);
  for (const auto& p : report.pruned)
    EXPECT_EQ(removed.at(p.master).get<std::vector<int64_t>>(), p.removed) << p.master;

  const at::Tensor ref = npy_load(dir + "/ref.npy");
  const at::Tensor y = run_slim(real, npy_load(fixture(model_, ".input.npy")));
  const double err = test::rel_error(y, ref);
  EXPECT_LE(err, kRelTol) << "Slim's pruned model vs PyTorch with sliced weights";
  const double change = test::rel_error(ref, npy_load(fixture(model_, ".output.npy")));
  EXPECT_GT(change, 1e-3) << "pruning changed nothing";
  std::printf("[   info   ] %s: %zu groups pruned, output changed by %.2g; rel err Slim vs "
              "PyTorch sliced %.2g\n",
              model_.c_str(), report.pruned.size(), change, err);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Torchvision, PruneTorchvisionReference,
                         ::testing::Values("resnet18", "mobilenet_v2"),
                         [](const auto& info) { return info.param; });

INSTANTIATE_TEST_SUITE_P(Torchvision, PruneTorchvisionTest,
                         ::testing::Values("resnet18", "mobilenet_v2", "densenet121",
                                           "efficientnet_b0", "shufflenet_v2_x1_0"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace slim
