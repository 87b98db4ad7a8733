#include "slim/ir/graph.h"

#include <algorithm>
#include <deque>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

namespace slim {

namespace {
const std::string kEmpty;

template <typename T>
const T* attr_as(const Node& n, const std::string& key) {
  auto it = n.attrs.find(key);
  if (it == n.attrs.end()) return nullptr;
  const T* v = std::get_if<T>(&it->second);
  SLIM_CHECK(v != nullptr, n.label(), ": attribute '", key, "' has an unexpected type");
  return v;
}
}  // namespace

int64_t Node::i(const std::string& key, int64_t def) const {
  const int64_t* v = attr_as<int64_t>(*this, key);
  return v ? *v : def;
}

int64_t Node::i(const std::string& key) const {
  const int64_t* v = attr_as<int64_t>(*this, key);
  SLIM_CHECK(v != nullptr, label(), ": required attribute '", key, "' is missing");
  return *v;
}

float Node::f(const std::string& key, float def) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return def;
  if (auto* iv = std::get_if<int64_t>(&it->second)) return static_cast<float>(*iv);
  const float* v = attr_as<float>(*this, key);
  return *v;
}

std::string Node::s(const std::string& key, const std::string& def) const {
  const std::string* v = attr_as<std::string>(*this, key);
  return v ? *v : def;
}

std::vector<int64_t> Node::ints(const std::string& key, const std::vector<int64_t>& def) const {
  const auto* v = attr_as<std::vector<int64_t>>(*this, key);
  return v ? *v : def;
}

std::vector<float> Node::floats(const std::string& key, const std::vector<float>& def) const {
  const auto* v = attr_as<std::vector<float>>(*this, key);
  return v ? *v : def;
}

at::Tensor Node::t(const std::string& key) const {
  const auto* v = attr_as<at::Tensor>(*this, key);
  SLIM_CHECK(v != nullptr, label(), ": required tensor attribute '", key, "' is missing");
  return *v;
}

const std::string& Node::input(size_t idx) const {
  return idx < inputs.size() ? inputs[idx] : kEmpty;
}

std::string Node::label() const {
  return op_type + " node '" + (name.empty() ? (outputs.empty() ? "?" : outputs[0]) : name) + "'";
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  if (shape.empty()) return "scalar";
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += "x";
    s += shape[i] == kDynamicDim ? std::string("N") : std::to_string(shape[i]);
  }
  return s;
}

std::string ValueInfo::shape_str() const {
  if (!has_shape) return "?";
  if (shape.empty()) return "scalar";
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += "x";
    if (shape[i] == kDynamicDim)
      s += (i < dim_names.size() && !dim_names[i].empty()) ? dim_names[i] : "?";
    else
      s += std::to_string(shape[i]);
  }
  return s;
}

at::ScalarType dtype_from_onnx(int64_t code) {
  switch (code) {
    case 1:
      return at::kFloat;
    case 2:
      return at::kByte;
    case 3:
      return at::kChar;
    case 5:
      return at::kShort;
    case 6:
      return at::kInt;
    case 7:
      return at::kLong;
    case 9:
      return at::kBool;
    case 10:
      return at::kHalf;
    case 11:
      return at::kDouble;
    case 16:
      return at::kBFloat16;
    default:
      SLIM_FAIL("ONNX data type ", code,
                " is not supported (supported: float32, float64, float16, bfloat16, int8, uint8, "
                "int16, int32, int64, bool)");
  }
}

int64_t dtype_to_onnx(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return 1;
    case at::kByte:
      return 2;
    case at::kChar:
      return 3;
    case at::kShort:
      return 5;
    case at::kInt:
      return 6;
    case at::kLong:
      return 7;
    case at::kBool:
      return 9;
    case at::kHalf:
      return 10;
    case at::kDouble:
      return 11;
    case at::kBFloat16:
      return 16;
    default:
      SLIM_FAIL("dtype ", c10::toString(t), " has no ONNX equivalent");
  }
}

std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return "float32";
    case at::kDouble:
      return "float64";
    case at::kHalf:
      return "float16";
    case at::kBFloat16:
      return "bfloat16";
    case at::kByte:
      return "uint8";
    case at::kChar:
      return "int8";
    case at::kShort:
      return "int16";
    case at::kInt:
      return "int32";
    case at::kLong:
      return "int64";
    case at::kBool:
      return "bool";
    default:
      return c10::toString(t);
  }
}

bool Graph::is_input(const std::string& v) const {
  return std::any_of(inputs.begin(), inputs.end(), [&](const ValueInfo& i) { return i.name == v; });
}

bool Graph::is_output(const std::string& v) const {
  return std::any_of(outputs.begin(), outputs.end(),
                     [&](const ValueInfo& o) { return o.name == v; });
}

ValueKind Graph::kind(const std::string& v) const {
  if (is_initializer(v)) return ValueKind::kInitializer;
  if (is_input(v)) return ValueKind::kInput;
  if (producer(v) >= 0) return ValueKind::kNodeOutput;
  return ValueKind::kUnknown;
}

int Graph::producer(const std::string& v) const {
  if (v.empty()) return -1;
  for (size_t i = 0; i < nodes.size(); ++i)
    for (const auto& o : nodes[i].outputs)
      if (o == v) return static_cast<int>(i);
  return -1;
}

std::vector<int> Graph::consumers(const std::string& v) const {
  std::vector<int> out;
  if (v.empty()) return out;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (std::find(nodes[i].inputs.begin(), nodes[i].inputs.end(), v) != nodes[i].inputs.end())
      out.push_back(static_cast<int>(i));
  return out;
}

const Node* Graph::find_node(const std::string& node_name) const {
  for (const auto& n : nodes)
    if (n.name == node_name) return &n;
  return nullptr;
}

Node* Graph::find_node(const std::string& node_name) {
  for (auto& n : nodes)
    if (n.name == node_name) return &n;
  return nullptr;
}

std::optional<std::vector<int64_t>> Graph::shape_of(const std::string& v) const {
  auto init = initializers.find(v);
  if (init != initializers.end()) return init->second.sizes().vec();
  for (const auto& i : inputs)
    if (i.name == v && i.has_shape) return i.shape;
  auto vi = value_info.find(v);
  if (vi != value_info.end() && vi->second.has_shape) return vi->second.shape;
  for (const auto& o : outputs)
    if (o.name == v && o.has_shape) return o.shape;
  return std::nullopt;
}

std::map<std::string, int> Graph::op_histogram() const {
  std::map<std::string, int> h;
  for (const auto& n : nodes) h[n.op_type]++;
  return h;
}

void Graph::mark_default_trainable() {
  // Not weights: BN running statistics, Clip bounds, and shape/axes operands of any op.
  std::set<std::string> fixed;
  for (const auto& n : nodes) {
    if (n.op_type == "BatchNormalization") {
      fixed.insert(n.input(3));
      fixed.insert(n.input(4));
    } else if (n.op_type == "Clip") {
      fixed.insert(n.input(1));
      fixed.insert(n.input(2));
    }
  }
  trainable.clear();
  for (const auto& [name, t] : initializers)
    if (at::isFloatingType(t.scalar_type()) && t.dim() > 0 && !fixed.count(name))
      trainable.insert(name);
}

void Graph::replace_all_uses(const std::string& from, const std::string& to) {
  if (from == to) return;
  if (is_output(from)) {
    // Keep the graph output name: rename the value `to` into `from` instead.
    int p = producer(to);
    SLIM_ASSERT(p >= 0, "replace_all_uses: output '", from, "' replaced by non-node value '", to,
                "'");
    int old_p = producer(from);
    if (old_p >= 0)
      for (auto& o : nodes[old_p].outputs)
        if (o == from) o = unique_name(from + "_dead");
    for (auto& o : nodes[p].outputs)
      if (o == to) o = from;
    for (auto& n : nodes)
      for (auto& in : n.inputs)
        if (in == to) in = from;
    auto vi = value_info.find(to);
    if (vi != value_info.end()) {
      ValueInfo info = vi->second;
      info.name = from;
      value_info.erase(vi);
      value_info[from] = info;
    }
    return;
  }
  for (auto& n : nodes)
    for (auto& in : n.inputs)
      if (in == from) in = to;
}

void Graph::erase_nodes(const std::set<int>& indices) {
  std::vector<Node> kept;
  kept.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i)
    if (!indices.count(static_cast<int>(i))) kept.push_back(std::move(nodes[i]));
  nodes = std::move(kept);
}

int Graph::remove_dead() {
  int removed = 0;
  for (;;) {
    std::unordered_set<std::string> used;
    for (const auto& o : outputs) used.insert(o.name);
    for (const auto& n : nodes)
      for (const auto& in : n.inputs) used.insert(in);
    std::set<int> dead;
    for (size_t i = 0; i < nodes.size(); ++i) {
      bool any = false;
      for (const auto& o : nodes[i].outputs) any = any || (!o.empty() && used.count(o));
      if (!any) dead.insert(static_cast<int>(i));
    }
    std::vector<std::string> dead_inits;
    for (const auto& [name, t] : initializers)
      if (!used.count(name)) dead_inits.push_back(name);
    for (const auto& name : dead_inits) {
      initializers.erase(name);
      trainable.erase(name);
    }
    if (dead.empty()) {
      // Drop stale value_info entries.
      std::unordered_set<std::string> produced;
      for (const auto& n : nodes)
        for (const auto& o : n.outputs) produced.insert(o);
      for (auto it = value_info.begin(); it != value_info.end();)
        it = produced.count(it->first) ? std::next(it) : value_info.erase(it);
      return removed;
    }
    removed += static_cast<int>(dead.size());
    erase_nodes(dead);
  }
}

void Graph::topo_sort() {
  std::unordered_map<std::string, int> prod;
  for (size_t i = 0; i < nodes.size(); ++i)
    for (const auto& o : nodes[i].outputs)
      if (!o.empty()) prod[o] = static_cast<int>(i);
  const size_t n = nodes.size();
  std::vector<int> indeg(n, 0);
  std::vector<std::vector<int>> succ(n);
  for (size_t i = 0; i < n; ++i) {
    std::set<int> preds;
    for (const auto& in : nodes[i].inputs) {
      auto it = prod.find(in);
      if (it != prod.end() && it->second != static_cast<int>(i)) preds.insert(it->second);
    }
    for (int p : preds) {
      succ[p].push_back(static_cast<int>(i));
      indeg[i]++;
    }
  }
  // Kahn's algorithm with a min-queue on the original index keeps the order stable.
  std::set<int> ready;
  for (size_t i = 0; i < n; ++i)
    if (indeg[i] == 0) ready.insert(static_cast<int>(i));
  std::vector<Node> sorted;
  sorted.reserve(n);
  while (!ready.empty()) {
    int i = *ready.begin();
    ready.erase(ready.begin());
    sorted.push_back(std::move(nodes[i]));
    for (int s : succ[i])
      if (--indeg[s] == 0) ready.insert(s);
  }
  SLIM_CHECK(sorted.size() == n, "graph '", name, "' has a cycle");
  nodes = std::move(sorted);
}

std::string Graph::unique_name(const std::string& base) const {
  // Only names starting with `base` can clash with it or its numbered variants: a scan that
  // keeps those, without hashing every name of the graph (passes call this once per node).
  std::unordered_set<std::string> taken;
  auto see = [&](const std::string& s) {
    if (s.compare(0, base.size(), base) == 0) taken.insert(s);
  };
  for (const auto& i : inputs) see(i.name);
  for (const auto& [k, v] : initializers) see(k);
  for (const auto& n : nodes) {
    see(n.name);
    for (const auto& o : n.outputs) see(o);
  }
  if (!taken.count(base)) return base;
  for (int k = 1;; ++k) {
    std::string cand = base + "_" + std::to_string(k);
    if (!taken.count(cand)) return cand;
  }
}

void Graph::verify() const {
  std::unordered_set<std::string> defined;
  for (const auto& i : inputs) {
    SLIM_CHECK(!i.name.empty(), "graph '", name, "': an input has an empty name");
    SLIM_CHECK(defined.insert(i.name).second, "graph '", name, "': input '", i.name,
               "' is declared twice");
  }
  for (const auto& [k, t] : initializers) {
    SLIM_CHECK(t.defined(), "graph '", name, "': initializer '", k, "' has no data");
    defined.insert(k);
  }
  std::unordered_set<std::string> node_names;
  for (const auto& n : nodes) {
    SLIM_CHECK(!n.op_type.empty(), "graph '", name, "': a node has no op type");
    if (!n.name.empty())
      SLIM_CHECK(node_names.insert(n.name).second, "graph '", name, "': node name '", n.name,
                 "' is used twice");
    for (const auto& in : n.inputs)
      SLIM_CHECK(in.empty() || defined.count(in), n.label(), " reads '", in,
                 "', which is not a graph input, an initializer or the output of an earlier node");
    for (const auto& o : n.outputs) {
      if (o.empty()) continue;
      SLIM_CHECK(!defined.count(o), n.label(), " writes '", o,
                 "', which is already defined elsewhere (values must have a single producer)");
      defined.insert(o);
    }
  }
  for (const auto& o : outputs)
    SLIM_CHECK(defined.count(o.name), "graph '", name, "': output '", o.name,
               "' is never produced");
  for (const auto& t : trainable)
    SLIM_CHECK(initializers.count(t), "graph '", name, "': trainable '", t,
               "' is not an initializer");
}

namespace {
std::string attr_to_string(const AttrValue& v) {
  std::ostringstream os;
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, at::Tensor>) {
          os << "tensor<" << dtype_name(x.scalar_type()) << " " << shape_to_string(x.sizes().vec())
             << ">";
        } else if constexpr (std::is_same_v<T, std::string>) {
          os << '"' << x << '"';
        } else if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, float>) {
          os << x;
        } else {
          os << "[";
          for (size_t i = 0; i < x.size(); ++i) os << (i ? "," : "") << x[i];
          os << "]";
        }
      },
      v);
  return os.str();
}
}  // namespace

std::string Graph::dump() const {
  std::ostringstream os;
  os << "graph " << name << " (opset " << opset << ")\n";
  for (const auto& i : inputs)
    os << "  input  %" << i.name << " : " << dtype_name(i.dtype) << "[" << i.shape_str() << "]\n";
  for (const auto& o : outputs) {
    auto s = shape_of(o.name);
    os << "  output %" << o.name << " : " << dtype_name(o.dtype) << "["
       << (s ? shape_to_string(*s) : std::string("?")) << "]\n";
  }
  int64_t nparams = 0;
  for (const auto& [k, t] : initializers) nparams += t.numel();
  os << "  " << initializers.size() << " initializers, " << nparams << " elements\n";
  auto val = [&](const std::string& v) {
    if (v.empty()) return std::string("_");
    std::string s = "%" + v;
    if (is_initializer(v)) {
      s += "<" + shape_to_string(initializers.at(v).sizes().vec()) + ">";
    } else if (auto sh = shape_of(v)) {
      s += "[" + shape_to_string(*sh) + "]";
    }
    return s;
  };
  for (const auto& n : nodes) {
    os << "  ";
    for (size_t k = 0; k < n.outputs.size(); ++k) os << (k ? ", " : "") << val(n.outputs[k]);
    os << " = " << n.op_type;
    if (!n.name.empty()) os << " '" << n.name << "'";
    if (!n.attrs.empty()) {
      os << " {";
      bool first = true;
      for (const auto& [k, v] : n.attrs) {
        os << (first ? "" : ", ") << k << "=" << attr_to_string(v);
        first = false;
      }
      os << "}";
    }
    os << " (";
    for (size_t k = 0; k < n.inputs.size(); ++k) os << (k ? ", " : "") << val(n.inputs[k]);
    os << ")\n";
  }
  return os.str();
}

Graph Graph::clone() const {
  Graph g = *this;
  for (auto& [k, t] : g.initializers) {
    bool rg = t.requires_grad();
    t = t.detach().clone();
    if (rg) t.requires_grad_(true);
  }
  for (auto& n : g.nodes)
    for (auto& [k, v] : n.attrs)
      if (auto* t = std::get_if<at::Tensor>(&v)) *t = t->clone();
  return g;
}

}  // namespace slim
