#include "slim/distill/merge.h"

#include <set>

namespace slim {

namespace {

const ValueInfo* find_input(const Graph& g, const std::string& name) {
  for (const auto& i : g.inputs)
    if (i.name == name) return &i;
  return nullptr;
}

std::string input_list(const Graph& g) {
  std::string s;
  for (const auto& i : g.inputs)
    s += (s.empty() ? "'" : ", '") + i.name + "' [" + i.shape_str() + "]";
  return s.empty() ? "none" : s;
}

void check_compatible(const ValueInfo& t, const ValueInfo& s) {
  SLIM_CHECK(t.dtype == s.dtype, "teacher input '", t.name, "' is ", dtype_name(t.dtype),
             " but student input '", s.name, "' is ", dtype_name(s.dtype));
  if (!t.has_shape || !s.has_shape) return;
  bool ok = t.shape.size() == s.shape.size();
  for (size_t d = 0; ok && d < t.shape.size(); ++d)
    ok = t.shape[d] == kDynamicDim || s.shape[d] == kDynamicDim || t.shape[d] == s.shape[d];
  SLIM_CHECK(ok, "teacher input '", t.name, "' has shape ", t.shape_str(),
             " but student input '", s.name, "' has shape ", s.shape_str());
}

}  // namespace

Graph merge(const Graph& teacher, const Graph& student, const MergeOptions& opts) {
  SLIM_CHECK(!opts.prefix.empty(), "the teacher prefix must not be empty");
  SLIM_CHECK(teacher.opset == student.opset, "teacher opset ", teacher.opset,
             " differs from student opset ", student.opset,
             "; export both networks with the same opset");
  // Teacher input -> student input.
  std::map<std::string, std::string> feed = opts.data_name_map;
  if (feed.empty()) {
    SLIM_CHECK(teacher.inputs.size() == 1 && student.inputs.size() == 1,
               "teacher has inputs ", input_list(teacher), " and student has inputs ",
               input_list(student), ": give the mapping (teacher=student)");
    feed[teacher.inputs[0].name] = student.inputs[0].name;
  }
  for (const auto& [t, s] : feed) {
    const ValueInfo* ti = find_input(teacher, t);
    SLIM_CHECK(ti != nullptr, "'", t, "' is not an input of the teacher (its inputs: ",
               input_list(teacher), ")");
    const ValueInfo* si = find_input(student, s);
    SLIM_CHECK(si != nullptr, "'", s, "' is not an input of the student (its inputs: ",
               input_list(student), ")");
    check_compatible(*ti, *si);
  }
  for (const auto& i : teacher.inputs)
    SLIM_CHECK(feed.count(i.name), "teacher input '", i.name,
               "' is not mapped to a student input (student inputs: ", input_list(student), ")");

  // Every value and node name the student uses, to rule out clashes (values and nodes are
  // separate namespaces: zoo nodes are named after their outputs).
  std::set<std::string> values, node_names;
  for (const auto& i : student.inputs) values.insert(i.name);
  for (const auto& [name, t] : student.initializers) values.insert(name);
  for (const auto& n : student.nodes) {
    node_names.insert(n.name);
    for (const auto& o : n.outputs) values.insert(o);
  }
  auto rename = [&](const std::string& v) -> std::string {
    if (v.empty()) return v;
    auto it = feed.find(v);
    if (it != feed.end()) return it->second;
    return opts.prefix + v;
  };
  auto claim = [&](std::set<std::string>& taken, const std::string& name, const char* what) {
    SLIM_CHECK(taken.insert(name).second, "teacher ", what, " renamed to '", name,
               "' clashes with a name in the student; choose another prefix (now '",
               opts.prefix, "')");
  };

  Graph g = student;  // shallow: initializer tensors are the student's own
  for (const auto& [name, t] : teacher.initializers) {
    if (feed.count(name)) continue;
    claim(values, opts.prefix + name, "initializer");
    g.initializers[opts.prefix + name] = t;
  }
  for (const auto& n : teacher.nodes) {
    Node m = n;
    m.name = opts.prefix + n.name;
    claim(node_names, m.name, "node");
    for (auto& in : m.inputs) in = rename(in);
    for (auto& o : m.outputs) {
      if (o.empty()) continue;
      o = opts.prefix + o;
      claim(values, o, "value");
    }
    g.frozen_nodes.insert(m.name);
    g.nodes.push_back(std::move(m));
  }
  for (const auto& [name, info] : teacher.value_info) {
    if (feed.count(name)) continue;
    ValueInfo v = info;
    v.name = opts.prefix + name;
    g.value_info[v.name] = v;
  }
  for (const auto& [domain, version] : teacher.other_opsets) g.other_opsets.emplace(domain, version);
  // Trainable stays the student's set: the teacher's weights get no gradients.
  g.verify();
  return g;
}

}  // namespace slim
