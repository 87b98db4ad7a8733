#include "slim/passes/fold_batch_norm.h"

#include <cmath>
#include <map>
#include <set>
#include <vector>

namespace slim {

namespace {

/// w * s[c] along dim 0 with s in double: each product computed in double and rounded once to
/// w's type, as (w.to(double) * s).to(w's type) would, but for float weights in one pass without
/// the double temporaries (folding is on the path of every latency measurement and table).
at::Tensor scale_rows(const at::Tensor& w, const at::Tensor& s) {
  if (w.scalar_type() != at::kFloat) {
    std::vector<int64_t> view(w.dim(), 1);
    view[0] = w.size(0);
    return (w.to(at::kDouble) * s.view(view)).to(w.scalar_type());
  }
  const at::Tensor src = w.contiguous();
  const at::Tensor scale = s.contiguous();
  at::Tensor out = at::empty_like(src, at::MemoryFormat::Contiguous);
  const int64_t rows = src.size(0), inner = rows ? src.numel() / rows : 0;
  const float* x = src.data_ptr<float>();
  const double* k = scale.data_ptr<double>();
  float* y = out.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < inner; ++i)
      y[r * inner + i] = static_cast<float>(static_cast<double>(x[r * inner + i]) * k[r]);
  return out;
}

/// The values of a small tensor (BatchNormalization parameters, a bias) in double.
std::vector<double> values(const at::Tensor& t) {
  if (t.scalar_type() == at::kFloat && t.is_contiguous()) {
    const float* p = t.data_ptr<float>();
    return std::vector<double>(p, p + t.numel());
  }
  const at::Tensor d = t.to(at::kDouble).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

}  // namespace

int fold_batch_norm(Graph& g, bool values_too) {
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
    const size_t cout = static_cast<size_t>(w.size(0));
    const std::vector<double> scale = values(g.initializers.at(bn.input(1))),
                              offset = values(g.initializers.at(bn.input(2))),
                              mean = values(g.initializers.at(bn.input(3))),
                              var = values(g.initializers.at(bn.input(4)));
    const std::vector<double> b = conv.input(2).empty() ? std::vector<double>(cout, 0.0)
                                                        : values(g.initializers.at(conv.input(2)));
    if (scale.size() != cout || offset.size() != cout || mean.size() != cout ||
        var.size() != cout || b.size() != cout)
      continue;
    const double eps = static_cast<double>(bn.f("epsilon", 1e-5f));
    at::Tensor s = at::empty({static_cast<int64_t>(cout)}, at::kDouble);
    at::Tensor folded_b = at::empty({static_cast<int64_t>(cout)}, at::kDouble);
    for (size_t c = 0; c < cout; ++c) {
      const double sc = scale[c] / std::sqrt(var[c] + eps);
      s.data_ptr<double>()[c] = sc;
      folded_b.data_ptr<double>()[c] = (b[c] - mean[c]) * sc + offset[c];
    }
    g.initializers[conv.input(1)] = values_too ? scale_rows(w, s) : at::empty_like(w);
    const at::Tensor bias = folded_b.to(w.scalar_type());
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
