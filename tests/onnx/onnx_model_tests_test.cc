// ONNX's model tests (Debian libonnx-testdata: pytorch-converted, pytorch-operator, simple): small
// networks and single operators exported from PyTorch at opsets 6 to 9, each with its inputs and
// expected outputs. Slim upgrades them on load with ONNX's version converter (onnx_io.h) and runs
// them; every case with float data whose ops Slim implements must match its expected outputs.
// The rest are skipped with the reason, which OnnxModelTests.EveryCaseRunsOrSaysWhy prints.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "onnx_test_data.h"
#include "slim/data/npy.h"
#include "slim/exec/executor.h"
#include "slim/onnx/onnx_io.h"
#include "test_util.h"

namespace slim {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kModelTestDirs = {"pytorch-converted", "pytorch-operator", "simple"};

struct ModelCase {
  std::string id;  ///< dir_test, a valid GoogleTest parameter name
  fs::path dir;
  int64_t opset = 0;
  std::string skip;  ///< why it cannot run, or empty
};

/// Why a model test cannot run in Slim, from its protobuf: a graph input or output that is not
/// a float or double tensor. Empty if its data is floating point.
std::string non_float_reason(const onnx::ModelProto& mp) {
  std::set<std::string> inits;
  for (const auto& t : mp.graph().initializer()) inits.insert(t.name());
  auto check = [&](const onnx::ValueInfoProto& v, const char* what) -> std::string {
    if (inits.count(v.name())) return "";
    if (!v.type().has_tensor_type())
      return std::string(what) + " '" + v.name() + "' is not a tensor";
    const int et = v.type().tensor_type().elem_type();
    if (et != onnx::TensorProto::FLOAT && et != onnx::TensorProto::DOUBLE)
      return std::string(what) + " '" + v.name() + "' has element type " +
             onnx::TensorProto::DataType_Name(static_cast<onnx::TensorProto::DataType>(et));
    return "";
  };
  for (const auto& v : mp.graph().input())
    if (auto r = check(v, "input"); !r.empty()) return r;
  for (const auto& v : mp.graph().output())
    if (auto r = check(v, "output"); !r.empty()) return r;
  return "";
}

/// Scans the model tests once. A case is skipped for non-float data or an op Slim does not
/// implement (the importer's own error, so the reason cannot go stale); any other load error
/// (a failed upgrade) is left for the test to report.
const std::vector<ModelCase>& cases() {
  static const std::vector<ModelCase> all = [] {
    std::vector<ModelCase> found;
    for (const auto& sub : kModelTestDirs) {
      const fs::path root = fs::path(test::onnx_test_data_root()) / sub;
      if (!fs::is_directory(root)) continue;
      std::vector<fs::path> dirs;
      for (const auto& e : fs::directory_iterator(root))
        if (e.is_directory() && fs::exists(e.path() / "model.onnx")) dirs.push_back(e.path());
      std::sort(dirs.begin(), dirs.end());
      for (const auto& dir : dirs) {
        ModelCase c;
        c.dir = dir;
        c.id = sub + "_" + dir.filename().string();
        for (char& ch : c.id)
          if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
        onnx::ModelProto mp;
        if (!mp.ParseFromString(read_file((dir / "model.onnx").string()))) {
          c.skip = "model.onnx does not parse";
        } else {
          for (const auto& o : mp.opset_import())
            if (o.domain().empty() || o.domain() == "ai.onnx") c.opset = o.version();
          c.skip = non_float_reason(mp);
        }
        if (c.skip.empty()) {
          try {
            onnx_load((dir / "model.onnx").string());
          } catch (const Error& e) {
            const std::string what = e.what();
            if (auto at = what.find("unsupported op type"); at != std::string::npos)
              c.skip = what.substr(at, what.find(". Supported ops") - at);
          }
        }
        found.push_back(std::move(c));
      }
    }
    return found;
  }();
  return all;
}

std::vector<std::string> case_ids() {
  std::vector<std::string> ids;
  for (const auto& c : cases()) ids.push_back(c.id);
  return ids;
}

const ModelCase& find_case(const std::string& id) {
  for (const auto& c : cases())
    if (c.id == id) return c;
  throw std::logic_error("unknown ONNX model test " + id);
}

class OnnxModelTest : public ::testing::TestWithParam<std::string> {};
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(OnnxModelTest);

TEST_P(OnnxModelTest, MatchesReference) {
  const ModelCase& c = find_case(GetParam());
  if (!c.skip.empty()) GTEST_SKIP() << c.skip;
  Graph g = onnx_load((c.dir / "model.onnx").string());
  EXPECT_EQ(g.upgraded_from_opset, c.opset < kMinOpset ? c.opset : 0);
  EXPECT_EQ(g.opset, c.opset < kMinOpset ? kUpgradeOpset : c.opset);
  test::expect_matches_test_data(g, c.dir);
}

INSTANTIATE_TEST_SUITE_P(LibOnnxTestData, OnnxModelTest, ::testing::ValuesIn(case_ids()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(OnnxModelTests, EveryCaseRunsOrSaysWhy) {
  if (cases().empty())
    GTEST_SKIP() << test::onnx_test_data_root() << " has no model tests (install libonnx-testdata)";
  int runnable = 0, old = 0;
  std::map<std::string, int> per_dir;
  std::ostringstream skipped;
  for (const auto& c : cases()) {
    if (!c.skip.empty()) {
      skipped << "\n  " << c.id << ": " << c.skip;
      continue;
    }
    ++runnable;
    ++per_dir[c.dir.parent_path().filename().string()];
    if (c.opset < kMinOpset) ++old;
  }
  std::printf("[   info   ] %d of %zu ONNX model tests run (%d upgraded from opsets below %lld); "
              "skipped:%s\n", runnable, cases().size(), old, static_cast<long long>(kMinOpset),
              skipped.str().c_str());
  // libonnx-testdata 1.12 holds 140 model tests; 119 have float data, of which Slim ran 2
  // before it upgraded old opsets.
  EXPECT_GE(runnable, 100);
  EXPECT_GE(old, 90);
  for (const auto& sub : kModelTestDirs) EXPECT_GT(per_dir[sub], 0) << sub;
}

// The command a user runs: `slim run` on an opset-6 file upgrades it, says so in one line, and
// gives the expected outputs.
TEST(OnnxModelTests, SlimRunUpgradesOldOpsetsAndSaysSo) {
  const fs::path dir = fs::path(test::onnx_test_data_root()) / "pytorch-converted" / "test_Conv2d";
  if (!fs::exists(dir / "model.onnx")) GTEST_SKIP() << dir << " is missing";
  const std::string tmp = test::temp_dir("slim_run_upgrade");
  const fs::path set = dir / "test_data_set_0";
  npy_save(onnx_load_tensor((set / "input_0.pb").string()), tmp + "/x.npy");
  auto r = test::run_cmd(test::slim_bin() + " run " + test::quote((dir / "model.onnx").string()) +
                         " --in " + tmp + "/x.npy --out " + tmp + "/y.npy --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "note: " + (dir / "model.onnx").string() +
                       ": opset 6 upgraded to 13 with ONNX's version converter\n");
  EXPECT_TRUE(test::outputs_match(onnx_load_tensor((set / "output_0.pb").string()),
                                  npy_load(tmp + "/y.npy")));
}

// A model saved after an upgrade carries the new opset and loads without a second upgrade.
TEST(OnnxModelTests, SavedUpgradedModelCarriesTheNewOpset) {
  const fs::path model =
      fs::path(test::onnx_test_data_root()) / "pytorch-converted" / "test_Conv2d" / "model.onnx";
  if (!fs::exists(model)) GTEST_SKIP() << model << " is missing";
  Graph g = onnx_load(model.string());
  ASSERT_EQ(g.upgraded_from_opset, 6);
  const std::string out = test::temp_dir("saved_upgrade") + "/m.onnx";
  onnx_save(g, out);
  Graph h = onnx_load(out);
  EXPECT_EQ(h.opset, kUpgradeOpset);
  EXPECT_EQ(h.upgraded_from_opset, 0);
}

}  // namespace
}  // namespace slim
