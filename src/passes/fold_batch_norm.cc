#include "slim/passes/fold_batch_norm.h"

#include <map>
#include <set>

namespace slim {

int fold_batch_norm(Graph& g) {
  std::map<std::string, int> uses;
  for (const auto& n : g.nodes)
    for (const auto& in : n.inputs)
      if (!in.empty()) ++uses[in];
  auto own_const = [&](const std::string& v) {
    return !v.empty() && g.is_initializer(v) && uses[v] == 1 &&
           at::isFloatingType(g.initializers.at(v).scalar_type());
  };
  std::set<int> erase;
  for (size_t j = 0; j < g.nodes.size(); ++j) {
    const Node& bn = g.nodes[j];
    if (bn.op_type != "BatchNormalization" || !bn.domain.empty()) continue;
    bool extra_outputs = false;
    for (size_t k = 1; k < bn.outputs.size(); ++k) extra_outputs |= !bn.outputs[k].empty();
    if (extra_outputs || bn.i("training_mode", 0) != 0) continue;
    const int p = g.producer(bn.inputs[0]);
    if (p < 0 || erase.count(p)) continue;
    Node& conv = g.nodes[p];
    const std::string& y = conv.outputs[0];
    if (conv.op_type != "Conv" || !conv.domain.empty() || uses[y] != 1 || g.is_output(y)) continue;
    if (!own_const(conv.input(1)) || (!conv.input(2).empty() && !own_const(conv.input(2))))
      continue;
    bool params_const = true;
    for (size_t k = 1; k <= 4; ++k) params_const = params_const && g.is_initializer(bn.input(k));
    if (!params_const) continue;

    const at::Tensor w = g.initializers.at(conv.input(1));
    const int64_t cout = w.size(0);
    auto param = [&](size_t k) { return g.initializers.at(bn.input(k)).to(at::kDouble); };
    const at::Tensor s = param(1) / (param(4) + static_cast<double>(bn.f("epsilon", 1e-5f))).sqrt();
    if (s.numel() != cout) continue;
    at::Tensor b = conv.input(2).empty() ? at::zeros({cout}, at::kDouble)
                                         : g.initializers.at(conv.input(2)).to(at::kDouble);
    std::vector<int64_t> view(w.dim(), 1);
    view[0] = cout;
    g.initializers[conv.input(1)] = (w.to(at::kDouble) * s.view(view)).to(w.scalar_type());
    const at::Tensor bias = ((b - param(3)) * s + param(2)).to(w.scalar_type());
    if (conv.input(2).empty()) {
      const std::string name = g.unique_name(conv.name + "_bias");
      g.initializers[name] = bias;
      conv.inputs.resize(3);
      conv.inputs[2] = name;
    } else {
      g.initializers[conv.input(2)] = bias;
    }
    g.value_info.erase(y);
    conv.outputs[0] = bn.outputs[0];
    erase.insert(static_cast<int>(j));
  }
  g.erase_nodes(erase);
  g.remove_dead();
  for (auto it = g.trainable.begin(); it != g.trainable.end();)
    it = g.is_initializer(*it) ? std::next(it) : g.trainable.erase(it);
  return static_cast<int>(erase.size());
}

}  // namespace slim
