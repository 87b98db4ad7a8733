#include "slim/quant/insert_fake_quant.h"

#include <map>
#include <set>

#include "slim/quant/quant_targets.h"

namespace slim {

int insert_fake_quant(Graph& g, const QuantOptions& o) {
  check_quant_options(o);
  check_not_quantized(g, "quant-aware training");
  std::vector<QuantTarget> targets = find_quant_targets(g, o);
  SLIM_CHECK(!targets.empty(), "quant-aware training: nothing to quantize (no Conv/Gemm/MatMul "
             "with a constant float weight outside not_quant_pattern)");
  std::map<std::string, const QuantTarget*> by_node;
  for (const auto& t : targets) by_node[t.node] = &t;
  NameMaker fresh(g);
  std::map<std::string, std::string> weight_fq;
  std::vector<std::string> states;
  std::vector<Node> out;
  for (const Node& orig : g.nodes) {
    auto it = by_node.find(orig.name);
    if (it == by_node.end()) {
      out.push_back(orig);
      continue;
    }
    const QuantTarget& t = *it->second;
    if (!weight_fq.count(t.weight)) {
      Node f;
      f.op_type = "FakeQuant";
      f.name = fresh(t.weight + "_fake_quant");
      f.inputs = {t.weight};
      f.outputs = {fresh(t.weight + "_fake_quantized")};
      f.attrs["target"] = std::string("weight");
      f.attrs["algo"] = to_string(o.weight_algo);
      f.attrs["bits"] = int64_t{o.weight_bits};
      f.attrs["axis"] = o.weight_algo == WeightQuantAlgo::kAbsMax ? int64_t{-1} : t.weight_axis;
      weight_fq[t.weight] = f.outputs[0];
      out.push_back(f);
    }
    Node n = orig;
    n.inputs[1] = weight_fq.at(t.weight);
    out.push_back(std::move(n));
  }
  // Activations (and step outputs): one FakeQuant per value, right after it is computed, read by
  // all its readers, as the QDQ export will quantize them.
  insert_after_values(out, quantized_values(targets), [&](const std::string& v) {
    int64_t size = 1;
    if (o.act_algo == ActQuantAlgo::kMovingAverageAbsMax) size = 3;
    if (o.act_algo == ActQuantAlgo::kRangeAbsMax) size = 2 + o.window_size;
    std::string state = fresh(v + "_quant_state");
    g.initializers[state] = at::zeros({size}, at::kFloat);
    states.push_back(state);
    Node f;
    f.op_type = "FakeQuant";
    f.name = fresh(v + "_fake_quant");
    f.inputs = {v, state};
    f.outputs = {fresh(v + "_fake_quantized")};
    f.attrs["target"] = std::string("activation");
    f.attrs["algo"] = to_string(o.act_algo);
    f.attrs["bits"] = int64_t{o.act_bits};
    f.attrs["unsigned"] = int64_t{is_nonnegative(g, v) ? 1 : 0};
    f.attrs["moving_rate"] = static_cast<float>(o.moving_rate);
    f.attrs["window_size"] = o.window_size;
    return std::vector<Node>{std::move(f)};
  });
  g.nodes = std::move(out);
  for (const auto& s : states) g.trainable.erase(s);
  g.verify();
  return static_cast<int>(targets.size());
}

ScaleTable fake_quant_scales(const Graph& g) {
  ScaleTable t;
  t.algo = "qat";
  for (const auto& n : g.nodes) {
    if (n.op_type != "FakeQuant" || n.s("target", "") != "activation") continue;
    const at::Tensor& st = g.initializers.at(n.input(1));
    ActivationScale a;
    a.threshold = st[0].item<double>();
    a.abs_max = a.threshold;
    a.is_unsigned = n.i("unsigned", 0) != 0;
    t.act_bits = static_cast<int>(n.i("bits", 8));
    SLIM_CHECK(a.threshold > 0, n.label(), ": activation scale is ", a.threshold,
               " (was the model trained with the fake-quant nodes in place?)");
    for (int c : g.consumers(n.outputs[0])) a.consumers.push_back(g.nodes[c].name);
    t.activations[n.input(0)] = a;
  }
  for (const auto& n : g.nodes)
    if (n.op_type == "FakeQuant" && n.s("target", "") == "weight")
      t.weight_bits = static_cast<int>(n.i("bits", 8));
  return t;
}

int remove_fake_quant(Graph& g) {
  std::set<int> dead;
  std::map<std::string, std::string> back;  // fake-quantized value -> original
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (g.nodes[i].op_type == "FakeQuant") {
      dead.insert(static_cast<int>(i));
      back[g.nodes[i].outputs[0]] = g.nodes[i].input(0);
    }
  for (auto& n : g.nodes)
    for (auto& in : n.inputs) {
      auto it = back.find(in);
      if (it != back.end()) in = it->second;
    }
  for (auto& o : g.outputs)
    SLIM_CHECK(!back.count(o.name), "graph output '", o.name, "' is a FakeQuant output");
  g.erase_nodes(dead);
  g.remove_dead();
  g.verify();
  return static_cast<int>(dead.size());
}

}  // namespace slim
