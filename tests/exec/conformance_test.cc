// Conformance: runs Slim's executor over ONNX's own node tests (Debian libonnx-testdata) for
// every op we claim. Tests are selected by the op types in their model.onnx, not by name, so
// tests added by a newer ONNX release are picked up without editing this file.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "slim/exec/executor.h"
#include "slim/onnx/onnx_io.h"
#include "onnx_test_data.h"

namespace slim {
namespace {

namespace fs = std::filesystem;

/// ONNX node tests; SLIM_ONNX_NODE_TESTS points elsewhere, e.g. at a newer ONNX's test data.
const std::string& node_test_root() {
  static const std::string root = [] {
    const char* env = std::getenv("SLIM_ONNX_NODE_TESTS");
    return std::string(env && *env ? env : "/usr/share/libonnx-testdata/data/node");
  }();
  return root;
}


/// The ops Slim claims to implement to ONNX semantics; each must have an executor kernel.
// clang-format off
const std::set<std::string> kClaimedOps = {
    "Conv", "BatchNormalization", "Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid",
    "HardSwish", "Tanh", "Softmax", "MaxPool", "AveragePool", "GlobalAveragePool", "Gemm",
    "MatMul", "Add", "Sub", "Mul", "Div", "Concat", "Split", "Flatten", "Reshape", "Transpose",
    "Squeeze", "Unsqueeze", "ReduceMean", "Pad", "Dropout", "Identity", "Constant", "Gather",
    "Shape", "Slice", "Cast", "ConstantOfShape", "Expand", "GlobalMaxPool", "QuantizeLinear",
    "DequantizeLinear",
    // Beyond the foundation's list: what other exporters (TensorFlow, Paddle, detection and
    // segmentation heads) commonly write.
    "ConvTranspose", "Resize", "InstanceNormalization", "LayerNormalization", "LRN",
    "LogSoftmax", "Hardmax", "PRelu", "Elu", "Selu", "Celu", "ThresholdedRelu", "Softplus",
    "Softsign", "Shrink", "Abs", "Neg", "Sign", "Sqrt", "Reciprocal", "Exp", "Log", "Erf", "Floor",
    "Ceil", "Round", "Sin", "Cos", "Pow", "Mod", "Equal", "Less", "LessOrEqual", "Greater",
    "GreaterOrEqual", "And", "Or", "Xor", "Not", "Where", "Min", "Max", "Sum", "Mean",
    "ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
    "ReduceMax", "ReduceMin", "ReduceProd", "ArgMax", "ArgMin", "TopK", "CumSum", "Tile", "Range",
    "DepthToSpace", "SpaceToDepth", "Size",
};
// clang-format on

/// Tests that qualify by their ops but cannot pass, each with the reason. Models below opset 11
/// run upgraded by ONNX's version converter (onnx_io.h).
const std::map<std::string, std::string> kExcluded = {
    {"test_identity_opt", "optional-typed input; Slim values are tensors only"},
    {"test_identity_sequence", "sequence-typed input; Slim values are tensors only"},
    {"test_training_dropout", "random dropout mask drawn from numpy's RNG"},
    {"test_training_dropout_default", "random dropout mask drawn from numpy's RNG"},
    {"test_training_dropout_default_mask", "random dropout mask drawn from numpy's RNG"},
    {"test_training_dropout_mask", "random dropout mask drawn from numpy's RNG"},
    {"test_cast_FLOAT_to_STRING", "string tensors are not supported"},
    {"test_cast_STRING_to_FLOAT", "string tensors are not supported"},
    {"test_castlike_FLOAT_to_STRING_expanded", "string tensors are not supported"},
    {"test_castlike_STRING_to_FLOAT_expanded", "string tensors are not supported"},
    // ONNX 1.12 writes bfloat16 test tensors as uint16 (unsupported) and makes the expected
    // values by truncating float32, where a cast rounds to nearest even.
    {"test_cast_FLOAT_to_BFLOAT16", "bfloat16 data stored as uint16, truncated"},
    {"test_cast_BFLOAT16_to_FLOAT", "bfloat16 data stored as uint16, truncated"},
    {"test_castlike_FLOAT_to_BFLOAT16_expanded", "bfloat16 data stored as uint16, truncated"},
    {"test_castlike_BFLOAT16_to_FLOAT_expanded",
     "bfloat16 data stored as uint16, truncated"},  // LibTorch 1.13 has no unsigned integer types
                                                    // wider than 8 bits.
    {"test_max_uint16", "uint16 tensors: LibTorch has no uint16"},
    {"test_max_uint32", "uint32 tensors: LibTorch has no uint32"},
    {"test_max_uint64", "uint64 tensors: LibTorch has no uint64"},
    {"test_min_uint16", "uint16 tensors: LibTorch has no uint16"},
    {"test_min_uint32", "uint32 tensors: LibTorch has no uint32"},
    {"test_min_uint64", "uint64 tensors: LibTorch has no uint64"},
    {"test_mod_uint16", "uint16 tensors: LibTorch has no uint16"},
    {"test_mod_uint32", "uint32 tensors: LibTorch has no uint32"},
    {"test_mod_uint64", "uint64 tensors: LibTorch has no uint64"},
    {"test_pow_types_float32_uint32", "uint32 tensors: LibTorch has no uint32"},
    {"test_pow_types_float32_uint64", "uint64 tensors: LibTorch has no uint64"},
};

/// Claimed ops that no runnable ONNX 1.12 node test exercises, and why.
const std::map<std::string, std::string> kUncoveredOps = {};

/// One ONNX node test whose ops Slim claims; `skip` is empty if it must pass.
struct NodeTest {
  std::string name;
  std::set<std::string> ops;
  std::string skip;
};

bool have_test_data() { return fs::is_directory(node_test_root()); }

/// Op types and default-domain opset of a model, read from the protobuf directly: Slim's importer
/// rejects unsupported ops, and we need the ops to decide whether the test is ours.
bool read_model_ops(const fs::path& model, std::set<std::string>* ops, int64_t* opset) {
  onnx::ModelProto mp;
  if (!mp.ParseFromString(read_file(model.string()))) return false;
  *opset = 0;
  for (const auto& o : mp.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") *opset = o.version();
  for (const auto& n : mp.graph().node())
    ops->insert(n.domain().empty() || n.domain() == "ai.onnx" ? n.op_type()
                                                              : n.domain() + "::" + n.op_type());
  return true;
}

/// Scans the ONNX node tests once and keeps those whose ops are all claimed. A kernel added
/// without being claimed here does not pull in tests; claiming it does.
const std::vector<NodeTest>& scan() {
  static const std::vector<NodeTest> tests = [] {
    std::vector<NodeTest> found;
    if (!have_test_data()) return found;
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(node_test_root()))
      if (e.is_directory() && fs::exists(e.path() / "model.onnx")) dirs.push_back(e.path());
    std::sort(dirs.begin(), dirs.end());
    for (const auto& dir : dirs) {
      NodeTest t;
      t.name = dir.filename().string();
      int64_t opset = 0;
      if (!read_model_ops(dir / "model.onnx", &t.ops, &opset) || t.ops.empty()) continue;
      bool all_claimed = std::all_of(t.ops.begin(), t.ops.end(),
                                     [](const std::string& op) { return kClaimedOps.count(op); });
      if (!all_claimed) continue;
      auto ex = kExcluded.find(t.name);
      if (ex != kExcluded.end()) {
        t.skip = ex->second;
      }
      found.push_back(std::move(t));
    }
    return found;
  }();
  return tests;
}

std::vector<std::string> test_names() {
  std::vector<std::string> names;
  for (const auto& t : scan()) names.push_back(t.name);
  return names;
}

const NodeTest& find_test(const std::string& name) {
  for (const auto& t : scan())
    if (t.name == name) return t;
  throw std::logic_error("unknown ONNX node test " + name);
}

class OnnxNodeTest : public ::testing::TestWithParam<std::string> {};
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(OnnxNodeTest);

TEST_P(OnnxNodeTest, MatchesReference) {
  const NodeTest& t = find_test(GetParam());
  if (!t.skip.empty()) GTEST_SKIP() << "excluded: " << t.skip;
  const fs::path dir = fs::path(node_test_root()) / t.name;
  Graph g = onnx_load((dir / "model.onnx").string());  // below opset 11: upgraded
  test::expect_matches_test_data(g, dir);
}

INSTANTIATE_TEST_SUITE_P(Conformance, OnnxNodeTest, ::testing::ValuesIn(test_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(Conformance, ClaimedOpsHaveKernels) {
  for (const auto& op : kClaimedOps) EXPECT_TRUE(has_kernel(op)) << op;
}

TEST(Conformance, SelectsManyOnnxTests) {
  if (!have_test_data())
    GTEST_SKIP() << node_test_root() << " is missing (install libonnx-testdata)";
  int runnable = 0;
  std::ostringstream skipped;
  for (const auto& t : scan()) {
    if (t.skip.empty())
      ++runnable;
    else
      skipped << "\n  " << t.name << ": " << t.skip;
  }
  EXPECT_GE(runnable, 200) << "selected " << scan().size()
                           << " ONNX node tests, excluded:" << skipped.str();
  // Every exclusion must still name a qualifying test, so the list cannot silently rot.
  for (const auto& [name, reason] : kExcluded) {
    bool found = false;
    for (const auto& t : scan()) found = found || t.name == name;
    EXPECT_TRUE(found) << "stale exclusion " << name;
  }
}

TEST(Conformance, EveryClaimedOpIsExercised) {
  if (!have_test_data())
    GTEST_SKIP() << node_test_root() << " is missing (install libonnx-testdata)";
  std::set<std::string> covered;
  for (const auto& t : scan())
    if (t.skip.empty()) covered.insert(t.ops.begin(), t.ops.end());
  for (const auto& op : kClaimedOps) {
    if (kUncoveredOps.count(op)) continue;
    EXPECT_TRUE(covered.count(op)) << op << " is claimed but no runnable ONNX node test uses it";
  }
}

}  // namespace
}  // namespace slim
