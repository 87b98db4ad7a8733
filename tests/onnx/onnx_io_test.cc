// ONNX import/export without Python: lossless round trips of graphs built in code, the error
// messages for bad files, and atomic saves.
#include "slim/onnx/onnx_io.h"

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "../test_util.h"

namespace slim {
namespace {

namespace fs = std::filesystem;
using test::GraphBuilder;

/// Message of the slim::Error that `f` throws; fails the test if it throws nothing or another type.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected slim::Error, got another exception: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected slim::Error, nothing was thrown";
  return "";
}

bool bytes_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  at::Tensor ca = a.contiguous(), cb = b.contiguous();
  return ca.nbytes() == cb.nbytes() &&
         (ca.nbytes() == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0);
}

/// Attribute equality, floats and tensors compared bit for bit.
bool attr_equal(const AttrValue& a, const AttrValue& b) {
  if (a.index() != b.index()) return false;
  return std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        const T& y = std::get<T>(b);
        if constexpr (std::is_same_v<T, at::Tensor>) {
          return bytes_equal(x, y);
        } else if constexpr (std::is_same_v<T, float>) {
          return std::memcmp(&x, &y, sizeof x) == 0;
        } else if constexpr (std::is_same_v<T, std::vector<float>>) {
          return x.size() == y.size() &&
                 (x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
        } else {
          return x == y;
        }
      },
      a);
}

void expect_value_info_equal(const ValueInfo& a, const ValueInfo& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.dtype, b.dtype) << a.name;
  EXPECT_EQ(a.has_shape, b.has_shape) << a.name;
  EXPECT_EQ(a.shape, b.shape) << a.name;
  EXPECT_EQ(a.dim_names, b.dim_names) << a.name;
}

/// Everything ONNX can carry must survive: structure, attributes, initializers, value infos.
void expect_graphs_equal(const Graph& a, const Graph& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.opset, b.opset);
  EXPECT_EQ(a.producer_name, b.producer_name);
  ASSERT_EQ(a.inputs.size(), b.inputs.size());
  for (size_t i = 0; i < a.inputs.size(); ++i) expect_value_info_equal(a.inputs[i], b.inputs[i]);
  ASSERT_EQ(a.outputs.size(), b.outputs.size());
  for (size_t i = 0; i < a.outputs.size(); ++i) expect_value_info_equal(a.outputs[i], b.outputs[i]);
  ASSERT_EQ(a.value_info.size(), b.value_info.size());
  for (const auto& [name, v] : a.value_info) {
    ASSERT_TRUE(b.value_info.count(name)) << "value_info '" << name << "' was lost";
    expect_value_info_equal(v, b.value_info.at(name));
  }
  ASSERT_EQ(a.initializers.size(), b.initializers.size());
  for (const auto& [name, t] : a.initializers) {
    ASSERT_TRUE(b.initializers.count(name)) << "initializer '" << name << "' was lost";
    EXPECT_TRUE(bytes_equal(t, b.initializers.at(name)))
        << "initializer '" << name << "' (" << dtype_name(t.scalar_type()) << ") is not bit-exact";
  }
  ASSERT_EQ(a.nodes.size(), b.nodes.size());
  for (size_t k = 0; k < a.nodes.size(); ++k) {
    const Node& n = a.nodes[k];
    const Node& m = b.nodes[k];
    EXPECT_EQ(n.name, m.name);
    EXPECT_EQ(n.op_type, m.op_type) << n.label();
    EXPECT_EQ(n.domain, m.domain) << n.label();
    EXPECT_EQ(n.inputs, m.inputs) << n.label();
    EXPECT_EQ(n.outputs, m.outputs) << n.label();
    ASSERT_EQ(n.attrs.size(), m.attrs.size()) << n.label();
    for (const auto& [key, v] : n.attrs) {
      ASSERT_TRUE(m.attrs.count(key)) << n.label() << ": attribute '" << key << "' was lost";
      EXPECT_TRUE(attr_equal(v, m.attrs.at(key)))
          << n.label() << ": attribute '" << key << "' changed";
    }
  }
}

/// A graph exercising every attribute kind and a named plus an unnamed dynamic dim.
Graph attribute_graph() {
  GraphBuilder b;
  std::string x = b.input("x", {kDynamicDim, 3, kDynamicDim, 8});
  std::string w = b.init("conv.weight", at::randn({4, 3, 3, 3}, at::TensorOptions(at::kFloat)));
  std::string pads = b.init("pads", at::tensor({0, 0, 1, 1, 0, 0, 1, 1}, at::kLong));
  std::string p = b.node("Pad", {x, pads}, {{"mode", std::string("reflect")}}, "pad");  // STRING
  std::string c = b.node("Conv", {p, w},
                         {{"kernel_shape", std::vector<int64_t>{3, 3}},  // INTS
                          {"strides", std::vector<int64_t>{1, 1}},
                          {"dilations", std::vector<int64_t>{1, 1}},
                          {"group", int64_t{1}}},  // INT
                         "conv");
  std::string h = b.node("HardSigmoid", {c}, {{"alpha", 0.1f}, {"beta", 1.0f / 3.0f}}, "hsig");
  std::string l = b.node("LeakyRelu", {h}, {{"alpha", -0.0f}}, "leaky");  // FLOAT, signed zero
  std::string s = b.node("Softmax", {l}, {{"axis", int64_t{-1}}}, "softmax");
  // TENSOR, FLOATS and STRINGS attributes live on Constants (no supported op has the latter two).
  std::string k = b.node("Constant", {}, {{"value", at::tensor({7, -9}, at::kLong)}}, "const_t");
  b.node("Constant", {}, {{"value_floats", std::vector<float>{0.1f, -2.5f, 1e-30f}}}, "const_f");
  b.node("Constant", {}, {{"value_strings", std::vector<std::string>{"a", "", "z\xc3\xa9"}}},
         "const_s");
  b.node("Cast", {k}, {{"to", int64_t{1}}}, "cast");
  b.output(s);
  Graph g = b.build();
  g.inputs[0].dim_names = {"batch", "", "", ""};  // "batch" named, height dynamic but unnamed
  ValueInfo& out = g.outputs[0];
  out.has_shape = true;
  out.shape = {kDynamicDim, 4, kDynamicDim, 8};
  out.dim_names = {"batch", "", "height", ""};
  ValueInfo vi;
  vi.name = c;
  vi.has_shape = true;
  vi.shape = {kDynamicDim, 4, kDynamicDim, 8};
  vi.dim_names = {"batch", "", "", ""};
  g.value_info[c] = vi;
  g.name = "attribute_graph";
  g.producer_name = "onnx_io_test";
  return g;
}

/// x -> Relu -> y, serialized.
std::string relu_model_bytes() {
  GraphBuilder b;
  std::string y = b.node("Relu", {b.input("x", {kDynamicDim, 4})}, {}, "relu");
  b.output(y);
  return onnx_serialize(b.build());
}

/// A model large enough that truncating it cuts through tensor data.
std::string conv_model_bytes() {
  GraphBuilder b;
  std::string x = b.input("x", {1, 8, 16, 16});
  std::string w = b.init("w", at::randn({16, 8, 3, 3}));
  std::string y = b.node("Conv", {x, w}, {{"pads", std::vector<int64_t>{1, 1, 1, 1}}}, "conv");
  b.output(b.node("Relu", {y}, {}, "relu"));
  return onnx_serialize(b.build());
}

class OnnxIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(test::binary_dir()) / "onnx_io_test" / info->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write(const std::string& name, const std::string& bytes) const {
    std::ofstream(path(name), std::ios::binary) << bytes;
  }
  std::vector<std::string> dir_listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path dir_;
};

TEST_F(OnnxIoTest, RoundTripPreservesAttributesOfEveryKindAndDimNames) {
  at::manual_seed(0);
  Graph g = attribute_graph();
  Graph back = onnx_parse(onnx_serialize(g), "attribute_graph");
  expect_graphs_equal(g, back);
  // Spot checks in case expect_graphs_equal's own comparisons were too lenient.
  EXPECT_EQ(back.inputs[0].dim_names[0], "batch");
  EXPECT_EQ(back.inputs[0].shape[2], kDynamicDim);
  EXPECT_EQ(back.outputs[0].dim_names[2], "height");
  EXPECT_EQ(back.find_node("pad")->s("mode", ""), "reflect");
  EXPECT_EQ(back.find_node("softmax")->i("axis"), -1);
  EXPECT_TRUE(std::signbit(back.find_node("leaky")->f("alpha", 1.0f)));
  EXPECT_EQ(
      std::get<std::vector<std::string>>(back.find_node("const_s")->attrs.at("value_strings"))[2],
      "z\xc3\xa9");
  // And a second trip changes nothing more.
  expect_graphs_equal(back, onnx_parse(onnx_serialize(back), "second trip"));
}

TEST_F(OnnxIoTest, RoundTripKeepsInitializerDtypesBitExact) {
  GraphBuilder b;
  b.output(b.node("Relu", {b.input("x", {2})}, {}, "relu"));
  Graph g = b.build();
  const float inf = std::numeric_limits<float>::infinity();
  at::Tensor f = at::tensor({0.1f, -0.0f, inf, -inf, std::numeric_limits<float>::denorm_min(),
                             std::numeric_limits<float>::max(), 1.0f / 3.0f},
                            at::kFloat);
  // A NaN with a payload, which a float round trip through arithmetic would not keep.
  at::Tensor nan_bits = at::tensor({0x7fc12345}, at::kInt).view(at::kFloat);
  g.initializers["f32"] = at::cat({f, nan_bits}).reshape({2, 4});
  g.initializers["i64"] = at::tensor({std::numeric_limits<int64_t>::min(), int64_t{-1}, int64_t{0},
                                      std::numeric_limits<int64_t>::max()},
                                     at::kLong);
  g.initializers["i8"] = at::arange(-128, 128, at::kLong).to(at::kChar).reshape({16, 16});
  g.initializers["b"] = at::tensor({1, 0, 0, 1, 1}, at::kLong).to(at::kBool);
  g.initializers["scalar"] = at::scalar_tensor(42, at::kLong);  // rank 0
  g.initializers["empty"] = at::empty({0, 3}, at::kFloat);      // zero elements
  g.outputs[0].has_shape = true;  // else export infers it, and expect_graphs_equal would differ
  g.outputs[0].shape = {2};
  g.outputs[0].dim_names = {""};
  Graph back = onnx_parse(onnx_serialize(g), "dtypes");
  expect_graphs_equal(g, back);
  EXPECT_EQ(back.initializers.at("i8").scalar_type(), at::kChar);
  EXPECT_EQ(back.initializers.at("b").scalar_type(), at::kBool);
  EXPECT_EQ(back.initializers.at("scalar").dim(), 0);
  EXPECT_EQ(back.initializers.at("empty").sizes(), (std::vector<int64_t>{0, 3}));
}

TEST_F(OnnxIoTest, SaveThenLoadRoundTripsThroughAFile) {
  at::manual_seed(1);
  Graph g = attribute_graph();
  onnx_save(g, path("m.onnx"));
  expect_graphs_equal(g, onnx_load(path("m.onnx")));
  EXPECT_EQ(dir_listing(), std::vector<std::string>{"m.onnx"});
}

TEST_F(OnnxIoTest, ExportInfersGraphOutputShapesTheGraphDoesNotKnow) {
  // ONNX requires a shape on graph outputs; graphs built in code or by passes may lack one.
  GraphBuilder b;
  std::string x = b.input("x", {kDynamicDim, 4});
  b.output(b.node("Relu", {x}, {}, "relu"));
  Graph g = b.build();
  ASSERT_FALSE(g.outputs[0].has_shape);
  Graph back = onnx_parse(onnx_serialize(g), "inferred");
  EXPECT_TRUE(back.outputs[0].has_shape);
  EXPECT_EQ(back.outputs[0].shape, (std::vector<int64_t>{kDynamicDim, 4}));
  EXPECT_EQ(back.outputs[0].dim_names, (std::vector<std::string>{"N", ""}));

  // With the input's shape unknown too there is nothing to infer from: the error names both.
  g.inputs[0].has_shape = false;
  g.inputs[0].shape.clear();
  g.inputs[0].dim_names.clear();
  std::string msg = error_of([&] { onnx_serialize(g); });
  EXPECT_NE(msg.find("'relu_out'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'x'"), std::string::npos) << msg;
}

TEST_F(OnnxIoTest, MissingFileIsNamed) {
  std::string msg = error_of([&] { onnx_load(path("nope.onnx")); });
  EXPECT_NE(msg.find(path("nope.onnx")), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;
}

TEST_F(OnnxIoTest, EmptyFileIsRejected) {
  write("empty.onnx", "");
  std::string msg = error_of([&] { onnx_load(path("empty.onnx")); });
  EXPECT_NE(msg.find(path("empty.onnx")), std::string::npos) << msg;
  EXPECT_NE(msg.find("empty"), std::string::npos) << msg;
}

TEST_F(OnnxIoTest, TruncatedFileIsRejected) {
  std::string bytes = conv_model_bytes();
  ASSERT_GT(bytes.size(), 4000u);
  EXPECT_NO_THROW(onnx_parse(bytes, "whole"));
  write("half.onnx", bytes.substr(0, bytes.size() / 2));
  std::string msg = error_of([&] { onnx_load(path("half.onnx")); });
  EXPECT_NE(msg.find(path("half.onnx")), std::string::npos) << msg;
  EXPECT_NE(msg.find("not a valid ONNX model"), std::string::npos) << msg;
}

TEST_F(OnnxIoTest, TextFileIsRejected) {
  write("notes.onnx", "This is not an ONNX model.\nname: resnet18\nopset: 13\n");
  std::string msg = error_of([&] { onnx_load(path("notes.onnx")); });
  EXPECT_NE(msg.find(path("notes.onnx")), std::string::npos) << msg;
  EXPECT_NE(msg.find("not a valid ONNX model"), std::string::npos) << msg;
}

TEST_F(OnnxIoTest, DirectoryIsRejected) {
  std::string msg = error_of([&] { onnx_load(dir_.string()); });
  EXPECT_NE(msg.find(dir_.string()), std::string::npos) << msg;
}

TEST_F(OnnxIoTest, UnsupportedOpTypeNamesOpNodeAndSupportedOps) {
  onnx::ModelProto mp;
  ASSERT_TRUE(mp.ParseFromString(relu_model_bytes()));
  mp.mutable_graph()->mutable_node(0)->set_op_type("FancyActivation");
  std::string msg = error_of([&] { onnx_parse(mp.SerializeAsString(), "fancy.onnx"); });
  EXPECT_NE(msg.find("fancy.onnx"), std::string::npos) << msg;
  EXPECT_NE(msg.find("FancyActivation"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'relu'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Supported ops"), std::string::npos) << msg;
  for (const char* op : {"Conv", "Relu", "Gemm", "BatchNormalization"})
    EXPECT_NE(msg.find(op), std::string::npos) << op << " missing from: " << msg;

  // Ops from another domain are unsupported whatever their name, and all offenders are listed.
  auto* n = mp.mutable_graph()->add_node();
  n->set_name("fused");
  n->set_op_type("Relu");
  n->set_domain("com.example");
  n->add_input("x");
  n->add_output("z");
  auto* op = mp.add_opset_import();
  op->set_domain("com.example");
  op->set_version(1);
  msg = error_of([&] { onnx_parse(mp.SerializeAsString(), "fancy.onnx"); });
  EXPECT_NE(msg.find("FancyActivation"), std::string::npos) << msg;
  EXPECT_NE(msg.find("com.example::Relu"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'fused'"), std::string::npos) << msg;
}

TEST_F(OnnxIoTest, OpsetsAboveTheSupportedRangeAreRejected) {
  onnx::ModelProto mp;
  ASSERT_TRUE(mp.ParseFromString(relu_model_bytes()));
  mp.mutable_opset_import(0)->set_version(kMaxOpset + 1);
  std::string msg = error_of([&] { onnx_parse(mp.SerializeAsString(), "new.onnx"); });
  EXPECT_NE(msg.find("new.onnx"), std::string::npos) << msg;
  EXPECT_NE(msg.find("opset " + std::to_string(kMaxOpset + 1)), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::to_string(kMinOpset)), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::to_string(kMaxOpset)), std::string::npos) << msg;
  for (int64_t opset : {kMinOpset, kMaxOpset}) {
    mp.mutable_opset_import(0)->set_version(opset);
    Graph g = onnx_parse(mp.SerializeAsString(), "ok.onnx");
    EXPECT_EQ(g.opset, opset);
    EXPECT_EQ(g.upgraded_from_opset, 0);
  }
}

// Below opset 11 ONNX's version converter upgrades the model (the ONNX model tests in
// tests/onnx/onnx_model_tests_test.cc run 6-9 this way).
TEST_F(OnnxIoTest, OldOpsetsAreUpgraded) {
  onnx::ModelProto mp;
  ASSERT_TRUE(mp.ParseFromString(relu_model_bytes()));
  for (int64_t opset : {6, 9, 10}) {
    mp.mutable_opset_import(0)->set_version(opset);
    Graph g = onnx_parse(mp.SerializeAsString(), "old.onnx");
    EXPECT_EQ(g.opset, kUpgradeOpset);
    EXPECT_EQ(g.upgraded_from_opset, opset);
    ASSERT_EQ(g.nodes.size(), 1u);
    EXPECT_EQ(g.nodes[0].op_type, "Relu");
  }
}

// Converting a graph up (distillation merges a teacher and a student of different opsets) keeps
// what the file does not hold: the trainable set, and the frozen nodes.
TEST_F(OnnxIoTest, ConvertingTheOpsetKeepsTrainableAndFrozenNodes) {
  GraphBuilder b(13);
  auto x = b.input("x", {1, 3, 4, 4});
  auto y = b.node("Conv", {x, b.init("w", at::randn({2, 3, 1, 1}))}, {}, "conv");
  b.output(b.node("Relu", {y}, {}, "relu"));
  Graph g = b.build();
  g.frozen_nodes = {"conv"};
  g.trainable.erase("w");
  Graph up = onnx_convert_opset(g, 14, "the teacher");
  EXPECT_EQ(up.opset, 14);
  EXPECT_EQ(up.frozen_nodes, std::set<std::string>{"conv"});
  EXPECT_EQ(up.trainable, g.trainable);
}

// An op ONNX removed (ImageScaler, experimental until opset 9) cannot be upgraded: the error
// names it, its node and both opsets; ONNX's converter alone says only "unordered_map::at".
TEST_F(OnnxIoTest, AnOldOpsetTheConverterCannotUpgradeNamesTheOp) {
  onnx::ModelProto mp;
  ASSERT_TRUE(mp.ParseFromString(relu_model_bytes()));
  mp.mutable_opset_import(0)->set_version(8);
  auto* n = mp.mutable_graph()->mutable_node(0);
  n->set_op_type("ImageScaler");
  n->set_name("scale");
  std::string msg = error_of([&] { onnx_parse(mp.SerializeAsString(), "old.onnx"); });
  EXPECT_NE(msg.find("old.onnx: opset 8 is below 11"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ImageScaler (node 'scale')"), std::string::npos) << msg;
  EXPECT_NE(msg.find("opset 13"), std::string::npos) << msg;
}

TEST_F(OnnxIoTest, SaveOfAGraphFailingTheCheckerLeavesTheOldFileAlone) {
  write("m.onnx", "precious bytes");
  GraphBuilder b;
  b.output(b.node("NotAnOnnxOp", {b.input("x", {2})}, {}, "bogus"));
  Graph bad = b.build();
  bad.outputs[0].has_shape = true;  // so that the checker, not shape inference, refuses it
  bad.outputs[0].shape = {2};
  bad.outputs[0].dim_names = {""};
  std::string msg = error_of([&] { onnx_save(bad, path("m.onnx")); });
  EXPECT_NE(msg.find("checker"), std::string::npos) << msg;
  EXPECT_NE(msg.find("NotAnOnnxOp"), std::string::npos) << msg;
  EXPECT_EQ(read_file(path("m.onnx")), "precious bytes");
  EXPECT_EQ(dir_listing(), std::vector<std::string>{"m.onnx"}) << "a temp file was left behind";
}

TEST_F(OnnxIoTest, SaveIntoAMissingDirectoryFailsCleanly) {
  GraphBuilder b;
  b.output(b.node("Relu", {b.input("x", {2})}, {}, "relu"));
  std::string target = path("no/such/dir/m.onnx");
  std::string msg = error_of([&] { onnx_save(b.build(), target); });
  EXPECT_NE(msg.find(path("no/such/dir")), std::string::npos) << msg;
  EXPECT_TRUE(dir_listing().empty());
}

TEST_F(OnnxIoTest, SaveReplacesAnExistingFileWithoutLeavingTemps) {
  write("m.onnx", "old");
  GraphBuilder b;
  b.output(b.node("Relu", {b.input("x", {2})}, {}, "relu"));
  onnx_save(b.build(), path("m.onnx"));
  EXPECT_EQ(onnx_load(path("m.onnx")).nodes.at(0).op_type, "Relu");
  EXPECT_EQ(dir_listing(), std::vector<std::string>{"m.onnx"});
}


TEST(OnnxIoAliases, IdentityOfInitializerBecomesItsOwnInitializer) {
  // PyTorch deduplicates a fresh BN's running_var (ones) with its weight (ones) and re-creates it
  // with Identity. After import they must be separate tensors, and the stats not trainable.
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 2, 3, 3});
  b.init("bn.weight", at::ones({2}));
  b.init("bn.bias", at::zeros({2}));
  auto var = b.node("Identity", {"bn.weight"}, {}, "alias_var");
  auto mean = b.node("Identity", {"bn.bias"}, {}, "alias_mean");
  auto y = b.node("BatchNormalization", {x, "bn.weight", "bn.bias", mean, var}, {}, "bn");
  b.output(y);
  Graph g = onnx_parse(onnx_serialize(b.build()), "aliases.onnx");
  EXPECT_EQ(g.op_histogram().count("Identity"), 0u);
  ASSERT_TRUE(g.is_initializer(var));
  EXPECT_NE(g.initializers.at(var).data_ptr(), g.initializers.at("bn.weight").data_ptr());
  EXPECT_TRUE(at::equal(g.initializers.at(var), at::ones({2})));
  EXPECT_EQ(g.trainable, (std::set<std::string>{"bn.bias", "bn.weight"}));
}

}  // namespace
}  // namespace slim
