#include "slim/quant/quant_targets.h"

#include <algorithm>
#include <map>
#include <regex>
#include <set>

#include "slim/exec/onednn_conv.h"

namespace slim {

namespace {

bool float_initializer(const Graph& g, const std::string& v, int64_t rank) {
  auto it = g.initializers.find(v);
  return it != g.initializers.end() && it->second.scalar_type() == at::kFloat &&
         it->second.dim() == rank;
}

bool scalar_at_least_zero(const Graph& g, const std::string& v) {
  auto it = g.initializers.find(v);
  return it != g.initializers.end() && it->second.numel() == 1 && it->second.item<double>() >= 0;
}

/// The value ending target node `n`'s int8 step, or "" (see QuantTarget::output): past an
/// activation the int8 kernels apply before rounding the output (fusable_activation, as Slim's
/// executor fuses it; ONNX Runtime's QLinearConv fusions take the same ones).
std::string step_output(const Graph& g, const Node& n) {
  std::string v = n.outputs.empty() ? "" : n.outputs[0];
  if (v.empty() || g.is_output(v)) return "";
  std::vector<int> readers = g.consumers(v);
  if (readers.size() == 1 && fusable_activation(g, g.nodes[readers[0]]).active() &&
      g.nodes[readers[0]].input(0) == v)
    v = g.nodes[readers[0]].outputs[0];
  if (g.is_output(v) || g.consumers(v).empty()) return "";
  return v;
}

}  // namespace

std::vector<QuantTarget> find_quant_targets(const Graph& g, const QuantOptions& o,
                                            std::vector<std::string>* skipped) {
  std::vector<QuantTarget> out;
  std::regex skip_re(o.not_quant_pattern.empty() ? "$^" : o.not_quant_pattern);
  auto skip = [&](const Node& n, const std::string& why) {
    if (skipped) skipped->push_back(n.label() + ": " + why);
  };
  for (const auto& n : g.nodes) {
    if (std::find(o.quantize_op_types.begin(), o.quantize_op_types.end(), n.op_type) ==
        o.quantize_op_types.end())
      continue;
    if (!n.domain.empty() && n.domain != "ai.onnx") continue;
    if (g.frozen_nodes.count(n.name)) continue;
    if (!o.not_quant_pattern.empty() && std::regex_search(n.name, skip_re)) {
      skip(n, "matches not_quant_pattern");
      continue;
    }
    QuantTarget t;
    t.node = n.name;
    t.op_type = n.op_type;
    t.activation = n.input(0);
    t.weight = n.input(1);
    if (t.activation.empty() || g.is_initializer(t.activation)) {
      skip(n, "input 0 is a constant");
      continue;
    }
    if (n.op_type == "Conv") {
      auto it = g.initializers.find(t.weight);
      if (it == g.initializers.end() || it->second.scalar_type() != at::kFloat ||
          it->second.dim() < 3) {
        skip(n, "weight is not a float initializer");
        continue;
      }
      t.weight_axis = 0;
      const std::string& b = n.input(2);
      if (!b.empty() && float_initializer(g, b, 1) &&
          g.initializers.at(b).size(0) == it->second.size(0))
        t.bias = b;
    } else if (n.op_type == "Gemm") {
      if (n.i("transA", 0) != 0) {
        skip(n, "transA=1 is not quantized");
        continue;
      }
      if (!float_initializer(g, t.weight, 2)) {
        skip(n, "weight is not a 2-D float initializer");
        continue;
      }
      t.weight_axis = n.i("transB", 0) ? 0 : 1;
      const int64_t cols = g.initializers.at(t.weight).size(t.weight_axis);
      const std::string& b = n.input(2);
      if (!b.empty() && float_initializer(g, b, 1) && g.initializers.at(b).size(0) == cols &&
          n.f("alpha", 1.f) == 1.f && n.f("beta", 1.f) == 1.f)
        t.bias = b;
    } else {  // MatMul: x [.., K] times W [K, N]
      if (!float_initializer(g, t.weight, 2)) {
        skip(n, "second input is not a 2-D float initializer");
        continue;
      }
      t.weight_axis = 1;
    }
    if (o.quantize_outputs) t.output = step_output(g, n);
    out.push_back(t);
  }
  return out;
}

std::vector<std::string> quantized_values(const std::vector<QuantTarget>& targets) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& t : targets)
    for (const std::string* v : {&t.activation, &t.output})
      if (!v->empty() && seen.insert(*v).second) out.push_back(*v);
  return out;
}

void insert_after_values(std::vector<Node>& nodes, const std::vector<std::string>& values,
                         const std::function<std::vector<Node>(const std::string&)>& make) {
  std::set<std::string> wanted(values.begin(), values.end()), produced;
  for (const auto& n : nodes) produced.insert(n.outputs.begin(), n.outputs.end());
  std::map<std::string, std::string> read_as;  // value -> what its readers read instead
  std::vector<Node> out;
  out.reserve(nodes.size() + 2 * values.size());
  auto emit = [&](const std::string& v) {
    std::vector<Node> made = make(v);
    SLIM_ASSERT(!made.empty() && made.back().outputs.size() == 1, "no node made for '", v, "'");
    read_as[v] = made.back().outputs[0];
    for (auto& m : made) out.push_back(std::move(m));
  };
  for (const auto& v : values)
    if (!produced.count(v)) emit(v);
  for (auto& n : nodes) {
    for (auto& in : n.inputs) {
      auto it = read_as.find(in);
      if (it != read_as.end()) in = it->second;
    }
    std::vector<std::string> outs = n.outputs;
    out.push_back(std::move(n));
    for (const auto& v : outs)
      if (wanted.count(v)) emit(v);
  }
  nodes = std::move(out);
}

void check_not_quantized(const Graph& g, const std::string& what) {
  for (const auto& n : g.nodes)
    SLIM_CHECK(n.op_type != "QuantizeLinear" && n.op_type != "DequantizeLinear" &&
                   n.op_type != "FakeQuant" && n.op_type != "QLinearConv" &&
                   n.op_type != "QLinearMatMul",
               what, ": the model is already quantized (", n.label(),
               "); start from the float model");
}

bool is_nonnegative(const Graph& g, const std::string& v) {
  int p = g.producer(v);
  if (p < 0) return false;
  const Node& n = g.nodes[p];
  const std::string& op = n.op_type;
  if (op == "Relu" || op == "Sigmoid" || op == "Softmax" || op == "Abs") return true;
  if (op == "Clip") {
    if (g.opset < 11) return n.f("min", -1.f) >= 0;
    return !n.input(1).empty() && scalar_at_least_zero(g, n.input(1));
  }
  if (op == "MaxPool" || op == "AveragePool" || op == "GlobalAveragePool" ||
      op == "GlobalMaxPool" || op == "Flatten" || op == "Reshape" || op == "Squeeze" ||
      op == "Unsqueeze" || op == "Transpose" || op == "Identity" || op == "Dropout")
    return is_nonnegative(g, n.input(0));
  if (op == "Concat" || op == "Add" || op == "Mul") {
    for (const auto& in : n.inputs)
      if (in.empty() || !is_nonnegative(g, in)) return false;
    return !n.inputs.empty();
  }
  return false;
}

std::string NameMaker::operator()(const std::string& base) {
  std::string name = g_.unique_name(base);
  for (int k = 1; made_.count(name); ++k) name = g_.unique_name(base + "_" + std::to_string(k));
  made_.insert(name);
  return name;
}

void install_rewrite(Graph& g, std::vector<Node> nodes) {
  g.nodes = std::move(nodes);
  g.remove_dead();
  for (auto it = g.trainable.begin(); it != g.trainable.end();)
    it = g.initializers.count(*it) ? std::next(it) : g.trainable.erase(it);
  g.verify();
}

}  // namespace slim
