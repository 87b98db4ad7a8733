#include "slim/onnx/onnx_io.h"

#include <fcntl.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>
#include <onnx/version_converter/convert.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "slim/exec/executor.h"
#include "slim/exec/infer_shapes.h"

namespace slim {

namespace {

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

/// Copies `count` elements of a repeated proto field into a tensor of type T.
template <typename T, typename Field>
at::Tensor from_field(const Field& f, std::vector<int64_t> shape, at::ScalarType dt) {
  at::Tensor t = at::empty(shape, dt);
  T* p = t.data_ptr<T>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(f.Get(static_cast<int>(i)));
  return t;
}

at::Tensor tensor_from_proto(const onnx::TensorProto& tp, const std::string& origin,
                             const std::string& base_dir) {
  std::vector<int64_t> shape(tp.dims().begin(), tp.dims().end());
  SLIM_CHECK(tp.data_type() != onnx::TensorProto::STRING, origin, ": tensor '", tp.name(),
             "' holds strings, which are not supported");
  at::ScalarType dt = dtype_from_onnx(tp.data_type());
  int64_t numel = 1;
  for (auto d : shape) {
    SLIM_CHECK(d >= 0, origin, ": tensor '", tp.name(), "' has a negative dim ", d);
    numel *= d;
  }
  const size_t nbytes = static_cast<size_t>(numel) * c10::elementSize(dt);
  std::string external;
  const std::string* raw = nullptr;
  if (tp.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string location;
    int64_t offset = 0, length = -1;
    for (const auto& kv : tp.external_data()) {
      if (kv.key() == "location") location = kv.value();
      if (kv.key() == "offset") offset = std::stoll(kv.value());
      if (kv.key() == "length") length = std::stoll(kv.value());
    }
    SLIM_CHECK(!location.empty(), origin, ": tensor '", tp.name(),
               "' is external but names no location");
    std::string path = base_dir + "/" + location;
    std::ifstream f(path, std::ios::binary);
    SLIM_CHECK(f.good(), origin, ": external data file '", path, "' of tensor '", tp.name(),
               "' cannot be opened");
    f.seekg(offset);
    external.resize(length >= 0 ? static_cast<size_t>(length) : nbytes);
    f.read(external.data(), static_cast<std::streamsize>(external.size()));
    SLIM_CHECK(f.gcount() == static_cast<std::streamsize>(external.size()), origin,
               ": external data file '", path, "' is too short for tensor '", tp.name(), "'");
    raw = &external;
  } else if (tp.has_raw_data()) {
    raw = &tp.raw_data();
  }
  if (raw) {
    SLIM_CHECK(raw->size() == nbytes, origin, ": tensor '", tp.name(), "' of shape ",
               shape_to_string(shape), " needs ", nbytes, " bytes of data, has ", raw->size());
    at::Tensor t = at::empty(shape, dt);
    if (nbytes) std::memcpy(t.data_ptr(), raw->data(), nbytes);
    return t;
  }
  auto check_count = [&](int n) {
    SLIM_CHECK(n == numel, origin, ": tensor '", tp.name(), "' of shape ", shape_to_string(shape),
               " has ", n, " values, expected ", numel);
  };
  switch (dt) {
    case at::kFloat:
      check_count(tp.float_data_size());
      return from_field<float>(tp.float_data(), shape, dt);
    case at::kDouble:
      check_count(tp.double_data_size());
      return from_field<double>(tp.double_data(), shape, dt);
    case at::kLong:
      check_count(tp.int64_data_size());
      return from_field<int64_t>(tp.int64_data(), shape, dt);
    case at::kInt:
      check_count(tp.int32_data_size());
      return from_field<int32_t>(tp.int32_data(), shape, dt);
    case at::kShort:
      check_count(tp.int32_data_size());
      return from_field<int16_t>(tp.int32_data(), shape, dt);
    case at::kChar:
      check_count(tp.int32_data_size());
      return from_field<int8_t>(tp.int32_data(), shape, dt);
    case at::kByte:
      check_count(tp.int32_data_size());
      return from_field<uint8_t>(tp.int32_data(), shape, dt);
    case at::kBool:
      check_count(tp.int32_data_size());
      return from_field<bool>(tp.int32_data(), shape, dt);
    case at::kHalf: {
      // float16 values are stored as their bit patterns in int32_data.
      check_count(tp.int32_data_size());
      at::Tensor bits = from_field<int16_t>(tp.int32_data(), shape, at::kShort);
      return bits.view(at::kHalf);
    }
    default:
      SLIM_FAIL(origin, ": tensor '", tp.name(), "' has unsupported type ", dtype_name(dt));
  }
}

void tensor_to_proto(const std::string& name, const at::Tensor& t, onnx::TensorProto* tp) {
  tp->set_name(name);
  at::Tensor c = t.detach().to(at::kCPU).contiguous();
  tp->set_data_type(static_cast<int32_t>(dtype_to_onnx(c.scalar_type())));
  for (auto d : c.sizes()) tp->add_dims(d);
  tp->set_raw_data(std::string(static_cast<const char*>(c.data_ptr()), c.nbytes()));
}

ValueInfo value_info_from_proto(const onnx::ValueInfoProto& vp, const std::string& origin) {
  ValueInfo v;
  v.name = vp.name();
  if (!vp.has_type()) return v;
  SLIM_CHECK(vp.type().has_tensor_type(), origin, ": value '", vp.name(),
             "' is not a tensor (sequences, maps and optionals are not supported)");
  const auto& tt = vp.type().tensor_type();
  if (tt.elem_type() != 0) v.dtype = dtype_from_onnx(tt.elem_type());
  if (tt.has_shape()) {
    v.has_shape = true;
    for (const auto& d : tt.shape().dim()) {
      if (d.has_dim_value()) {
        v.shape.push_back(d.dim_value());
        v.dim_names.push_back("");
      } else {
        v.shape.push_back(kDynamicDim);
        v.dim_names.push_back(d.has_dim_param() ? d.dim_param() : "");
      }
    }
  }
  return v;
}

void value_info_to_proto(const ValueInfo& v, onnx::ValueInfoProto* vp) {
  vp->set_name(v.name);
  auto* tt = vp->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(static_cast<int32_t>(dtype_to_onnx(v.dtype)));
  if (!v.has_shape) return;
  auto* shape = tt->mutable_shape();
  for (size_t i = 0; i < v.shape.size(); ++i) {
    auto* d = shape->add_dim();
    if (v.shape[i] != kDynamicDim)
      d->set_dim_value(v.shape[i]);
    else if (i < v.dim_names.size() && !v.dim_names[i].empty())
      d->set_dim_param(v.dim_names[i]);
  }
}

AttrValue attr_from_proto(const onnx::AttributeProto& a, const Node& n, const std::string& origin,
                          const std::string& base_dir) {
  using A = onnx::AttributeProto;
  switch (a.type()) {
    case A::INT:
      return a.i();
    case A::FLOAT:
      return a.f();
    case A::STRING:
      return a.s();
    case A::TENSOR:
      return tensor_from_proto(a.t(), origin, base_dir);
    case A::INTS:
      return std::vector<int64_t>(a.ints().begin(), a.ints().end());
    case A::FLOATS:
      return std::vector<float>(a.floats().begin(), a.floats().end());
    case A::STRINGS:
      return std::vector<std::string>(a.strings().begin(), a.strings().end());
    default:
      SLIM_FAIL(origin, ": ", n.label(), ": attribute '", a.name(), "' has type ",
                A::AttributeType_Name(a.type()), ", which is not supported");
  }
}

void attr_to_proto(const std::string& key, const AttrValue& v, onnx::AttributeProto* a) {
  using A = onnx::AttributeProto;
  a->set_name(key);
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, int64_t>) {
          a->set_type(A::INT);
          a->set_i(x);
        } else if constexpr (std::is_same_v<T, float>) {
          a->set_type(A::FLOAT);
          a->set_f(x);
        } else if constexpr (std::is_same_v<T, std::string>) {
          a->set_type(A::STRING);
          a->set_s(x);
        } else if constexpr (std::is_same_v<T, at::Tensor>) {
          a->set_type(A::TENSOR);
          tensor_to_proto("", x, a->mutable_t());
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
          a->set_type(A::INTS);
          for (auto e : x) a->add_ints(e);
        } else if constexpr (std::is_same_v<T, std::vector<float>>) {
          a->set_type(A::FLOATS);
          for (auto e : x) a->add_floats(e);
        } else {
          a->set_type(A::STRINGS);
          for (const auto& e : x) a->add_strings(e);
        }
      },
      v);
}

/// Minimum IR version that ONNX requires for an opset (IR 7 covers opsets 12-14, 8 covers 15-18).
int64_t min_ir_version(int64_t opset) {
  if (opset <= 11) return 6;
  if (opset <= 14) return 7;
  return 8;
}

}  // namespace

std::string read_file(const std::string& path) {
  std::error_code ec;
  SLIM_CHECK(!std::filesystem::is_directory(path, ec), "cannot open '", path,
             "': it is a folder, not a file");
  std::ifstream f(path, std::ios::binary);
  SLIM_CHECK(f.good(), "cannot open '", path, "': ", std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  std::random_device rd;
  std::string tmp =
      path + ".tmp" + std::to_string(::getpid()) + "_" + std::to_string(rd() % 100000);
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    SLIM_CHECK(f.good(), "cannot write '", tmp, "': ", std::strerror(errno));
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.flush();
    if (!f.good()) {
      std::remove(tmp.c_str());
      SLIM_FAIL("writing '", tmp, "' failed: ", std::strerror(errno));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    SLIM_FAIL("cannot move '", tmp, "' to '", path, "': ", std::strerror(err));
  }
}

namespace {

/// The default-domain opset a model imports, or 0.
int64_t default_opset(const onnx::ModelProto& mp) {
  for (const auto& op : mp.opset_import())
    if (op.domain().empty() || op.domain() == "ai.onnx") return op.version();
  return 0;
}

/// Before opset 7 a PRelu slope of shape [C] applied per channel (axis 1), as PyTorch exported
/// it; from 7 on it broadcasts like numpy (against the last axis). ONNX 1.12's converter keeps the
/// slope as it is, so a [C] slope initializer read by an input of rank r > 2 becomes
/// [C, 1, ..., 1] (r - 1 dims). `mp` is the converted model with its inferred shapes.
void fix_legacy_prelu_slopes(onnx::ModelProto& mp) {
  auto* gp = mp.mutable_graph();
  std::map<std::string, int> rank;
  auto note = [&](const onnx::ValueInfoProto& v) {
    if (v.type().has_tensor_type() && v.type().tensor_type().has_shape())
      rank[v.name()] = v.type().tensor_type().shape().dim_size();
  };
  for (const auto& v : gp->input()) note(v);
  for (const auto& v : gp->value_info()) note(v);
  for (const auto& n : gp->node()) {
    if (n.op_type() != "PRelu" || n.input_size() < 2 || !rank.count(n.input(0))) continue;
    const int r = rank.at(n.input(0));
    for (auto& t : *gp->mutable_initializer()) {
      if (t.name() != n.input(1) || t.dims_size() != 1 || t.dims(0) <= 1 || r <= 2) continue;
      for (int k = 0; k < r - 2; ++k) t.add_dims(1);
    }
  }
}

/// Upgrades a model below kMinOpset to kUpgradeOpset with ONNX's version converter. Its adapters
/// need the shapes of some inputs (a Constant added to a tensor, Softmax's rank), so ONNX's shape
/// inference runs first; the shapes it adds are dropped again (Slim infers its own). Errors carry
/// the converter's reason, which names the op.
void upgrade_opset(onnx::ModelProto& mp, const std::string& origin,
                   int64_t target = kUpgradeOpset) {
  const int64_t from = default_opset(mp);
  std::set<std::string> had;
  for (const auto& v : mp.graph().value_info()) had.insert(v.name());
  onnx::ModelProto converted;
  try {
    onnx::ModelProto inferred = mp;
    try {
      onnx::shape_inference::InferShapes(inferred);
    } catch (const std::exception&) {
      inferred = mp;  // the converter may still manage without the shapes
    }
    converted = onnx::version_conversion::ConvertVersion(inferred, static_cast<int>(target));
  } catch (const std::exception& e) {
    // The converter's own message may not name the op (an op ONNX removed fails on a table
    // lookup), so first name the ops that have no definition at the target opset.
    std::vector<std::string> gone;
    for (const auto& n : mp.graph().node()) {
      if (!n.domain().empty() && n.domain() != "ai.onnx") continue;
      if (!onnx::OpSchemaRegistry::Schema(n.op_type(), static_cast<int>(target), ""))
        gone.push_back(n.op_type() + " (node '" + (n.name().empty() ? n.output(0) : n.name()) +
                       "')");
    }
    std::string why = e.what();
    // ONNX's assertion messages start with the source location and end with a stack trace.
    if (auto nl = why.find('\n'); nl != std::string::npos) why.resize(nl);
    if (auto at = why.find("Assertion"); at != std::string::npos) why = why.substr(at);
    if (!gone.empty())
      why = "no definition at opset " + std::to_string(target) + " for " + join(gone, ", ") +
            " (ONNX removed or never standardised these ops)";
    if (target == kUpgradeOpset)
      SLIM_FAIL(origin, ": opset ", from, " is below ", kMinOpset, " and ONNX's version converter ",
                "could not upgrade it to ", kUpgradeOpset, ": ", why,
                " (re-export the model with opset_version ", kMinOpset, " to ", kMaxOpset, ")");
    SLIM_FAIL(origin, ": ONNX's version converter could not convert opset ", from, " to ", target,
              ": ", why, " (export it with opset_version ", target, ")");
  }
  if (from < 7) fix_legacy_prelu_slopes(converted);
  auto* vi = converted.mutable_graph()->mutable_value_info();
  for (int i = vi->size() - 1; i >= 0; --i)
    if (!had.count(vi->Get(i).name())) vi->DeleteSubrange(i, 1);
  mp = std::move(converted);
}

}  // namespace

namespace {

void check_parsed(bool parsed, size_t bytes, const std::string& origin) {
  SLIM_CHECK(bytes > 0, origin, ": file is empty, not an ONNX model");
  SLIM_CHECK(parsed, origin,
             ": not a valid ONNX model (protobuf parsing failed; the file is truncated or of "
             "another format; ",
             bytes, " bytes)");
}

/// The graph of a parsed model. Consumes the initializers' data: each one's bytes are freed once
/// copied into its tensor, so a model is in memory about once while it loads, not twice.
Graph graph_from_proto(onnx::ModelProto& mp, const std::string& origin,
                       const std::string& base_dir) {
  SLIM_CHECK(mp.has_graph() && mp.ir_version() > 0, origin,
             ": not a valid ONNX model (no graph or IR version; the file is of another format)");
  const int64_t file_opset = default_opset(mp);
  const bool old_opset = file_opset > 0 && file_opset < kMinOpset;
  if (old_opset) upgrade_opset(mp, origin);
  Graph g;
  if (old_opset) g.upgraded_from_opset = file_opset;
  g.ir_version = mp.ir_version();
  g.producer_name = mp.producer_name();
  g.producer_version = mp.producer_version();
  bool has_default = false;
  for (const auto& op : mp.opset_import()) {
    if (op.domain().empty() || op.domain() == "ai.onnx") {
      g.opset = op.version();
      has_default = true;
    } else {
      g.other_opsets[op.domain()] = op.version();
    }
  }
  SLIM_CHECK(has_default, origin, ": the model imports no default-domain (ai.onnx) opset");
  SLIM_CHECK(g.opset >= kMinOpset && g.opset <= kMaxOpset, origin, ": opset ", g.opset,
             " is not supported (Slim reads opsets ", kMinOpset, " to ", kMaxOpset,
             "; re-export the model with opset_version in that range)");
  const auto& gp = mp.graph();
  g.name = gp.name().empty() ? "graph" : gp.name();
  for (auto& t : *mp.mutable_graph()->mutable_initializer()) {
    g.initializers[t.name()] = tensor_from_proto(t, origin, base_dir);
    std::string().swap(*t.mutable_raw_data());
  }
  SLIM_CHECK(gp.sparse_initializer_size() == 0, origin, ": sparse initializers are not supported");
  for (const auto& vp : gp.input())
    if (!g.initializers.count(vp.name())) g.inputs.push_back(value_info_from_proto(vp, origin));
  for (const auto& vp : gp.output()) g.outputs.push_back(value_info_from_proto(vp, origin));
  for (const auto& vp : gp.value_info()) {
    ValueInfo v = value_info_from_proto(vp, origin);
    g.value_info[v.name] = v;
  }
  std::map<std::string, std::string> unsupported;  // op type -> first node
  for (const auto& np : gp.node()) {
    Node n;
    n.name = np.name();
    n.op_type = np.op_type();
    n.domain = np.domain() == "ai.onnx" ? "" : np.domain();
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    if (!n.domain.empty() || !has_kernel(n.op_type)) {
      std::string key = n.domain.empty() ? n.op_type : n.domain + "::" + n.op_type;
      unsupported.emplace(key, n.name.empty() ? n.outputs.at(0) : n.name);
      continue;
    }
    for (const auto& a : np.attribute())
      n.attrs[a.name()] = attr_from_proto(a, n, origin, base_dir);
    g.nodes.push_back(std::move(n));
  }
  if (!unsupported.empty()) {
    std::vector<std::string> what;
    for (const auto& [op, node] : unsupported) what.push_back(op + " (node '" + node + "')");
    SLIM_FAIL(origin, ": unsupported op type", what.size() > 1 ? "s " : " ", join(what, ", "),
              ". Supported ops: ", join(supported_ops(), ", "));
  }
  // Give unnamed nodes stable names so passes and messages can refer to them.
  std::map<std::string, int> counters;
  std::set<std::string> used;
  for (const auto& n : g.nodes) used.insert(n.name);
  for (auto& n : g.nodes) {
    if (!n.name.empty()) continue;
    std::string cand;
    do {
      cand = n.op_type + "_" + std::to_string(counters[n.op_type]++);
    } while (used.count(cand));
    used.insert(cand);
    n.name = cand;
  }
  // PyTorch's exporter deduplicates equal initializers and re-creates the copies with Identity
  // nodes (a fresh BatchNorm's running_var == its weight == ones). Those are distinct state for
  // training (running stats must not alias trainable weights), so each Identity of an
  // initializer becomes an initializer of its own. Numerics are unchanged.
  std::set<int> aliases;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (n.op_type != "Identity" || n.inputs.size() != 1 || !g.is_initializer(n.inputs[0]) ||
        g.is_output(n.outputs[0]))
      continue;
    g.initializers[n.outputs[0]] = g.initializers.at(n.inputs[0]).clone();
    aliases.insert(static_cast<int>(i));
  }
  g.erase_nodes(aliases);
  g.verify();
  g.mark_default_trainable();
  return g;
}

}  // namespace

Graph onnx_parse(const std::string& bytes, const std::string& origin, const std::string& base_dir) {
  onnx::ModelProto mp;
  check_parsed(!bytes.empty() && mp.ParseFromString(bytes), bytes.size(), origin);
  return graph_from_proto(mp, origin, base_dir);
}

Graph onnx_load(const std::string& path) {
  // Parsed straight from the file: holding the file's bytes as well would add the model's size
  // to the peak memory of every command.
  std::error_code ec;
  SLIM_CHECK(!std::filesystem::is_directory(path, ec), "cannot open '", path,
             "': it is a folder, not a file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  SLIM_CHECK(fd >= 0, "cannot open '", path, "': ", std::strerror(errno));
  onnx::ModelProto mp;
  bool parsed = false;
  {
    google::protobuf::io::FileInputStream in(fd);
    in.SetCloseOnDelete(true);
    parsed = mp.ParseFromZeroCopyStream(&in);
    SLIM_CHECK(in.GetErrno() == 0, "cannot read '", path, "': ", std::strerror(in.GetErrno()));
  }
  const auto size = std::filesystem::file_size(path, ec);
  check_parsed(parsed && !ec && size > 0, ec ? 0 : static_cast<size_t>(size), path);
  return graph_from_proto(mp, path, dir_of(path));
}

Graph onnx_convert_opset(const Graph& g, int64_t opset, const std::string& what) {
  SLIM_CHECK(opset > g.opset && opset <= kMaxOpset, what, ": cannot convert opset ", g.opset,
             " to ", opset, " (only up, to at most ", kMaxOpset, ")");
  onnx::ModelProto mp;
  SLIM_ASSERT(mp.ParseFromString(onnx_serialize(g)), "serialized graph does not parse");
  upgrade_opset(mp, what, opset);
  std::string bytes;
  mp.SerializeToString(&bytes);
  Graph out = onnx_parse(bytes, what);
  out.upgraded_from_opset = g.opset;
  out.trainable = g.trainable;
  // Not in the file either: nodes the upgrade kept keep their names.
  for (const auto& n : out.nodes)
    if (g.frozen_nodes.count(n.name)) out.frozen_nodes.insert(n.name);
  return out;
}

std::string onnx_serialize(const Graph& graph) {
  // ONNX requires a shape on every graph output: infer missing ones on a copy.
  const Graph* src = &graph;
  Graph inferred;
  for (const auto& o : graph.outputs)
    if (!o.has_shape && src == &graph) {
      inferred = graph.clone();
      try {
        infer_shapes(inferred);
      } catch (const Error& e) {
        SLIM_FAIL("graph '", graph.name, "': output '", o.name,
                  "' has no shape and shape inference failed: ", error_brief(e));
      }
      src = &inferred;
    }
  const Graph& g = *src;
  onnx::ModelProto mp;
  mp.set_ir_version(std::max(g.ir_version, min_ir_version(g.opset)));
  mp.set_producer_name(g.producer_name.empty() ? "slim" : g.producer_name);
  if (!g.producer_version.empty()) mp.set_producer_version(g.producer_version);
  auto* op = mp.add_opset_import();
  op->set_domain("");
  op->set_version(g.opset);
  for (const auto& [domain, version] : g.other_opsets) {
    auto* o = mp.add_opset_import();
    o->set_domain(domain);
    o->set_version(version);
  }
  auto* gp = mp.mutable_graph();
  gp->set_name(g.name);
  for (const auto& i : g.inputs) value_info_to_proto(i, gp->add_input());
  for (const auto& o : g.outputs) value_info_to_proto(o, gp->add_output());
  for (const auto& [name, t] : g.initializers) tensor_to_proto(name, t, gp->add_initializer());
  for (const auto& [name, v] : g.value_info)
    if (v.has_shape) value_info_to_proto(v, gp->add_value_info());
  for (const auto& n : g.nodes) {
    auto* np = gp->add_node();
    np->set_name(n.name);
    np->set_op_type(n.op_type);
    if (!n.domain.empty()) np->set_domain(n.domain);
    for (const auto& in : n.inputs) np->add_input(in);
    for (const auto& o : n.outputs) np->add_output(o);
    for (const auto& [key, v] : n.attrs) attr_to_proto(key, v, np->add_attribute());
  }
  try {
    onnx::checker::check_model(mp);
  } catch (const std::exception& e) {
    SLIM_FAIL("graph '", g.name, "' does not pass the ONNX checker: ", e.what());
  }
  std::string bytes;
  SLIM_CHECK(mp.SerializeToString(&bytes), "graph '", g.name,
             "' could not be serialized (model over 2 GB?)");
  return bytes;
}

void onnx_save(const Graph& g, const std::string& path) {
  write_file_atomic(path, onnx_serialize(g));
}

at::Tensor onnx_load_tensor(const std::string& path) {
  std::string bytes = read_file(path);
  onnx::TensorProto tp;
  SLIM_CHECK(tp.ParseFromString(bytes), path, ": not a serialized ONNX TensorProto");
  return tensor_from_proto(tp, path, dir_of(path));
}

}  // namespace slim
