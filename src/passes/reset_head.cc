#include "slim/passes/reset_head.h"

#include <ATen/ATen.h>

#include <cmath>

#include "slim/exec/infer_shapes.h"
#include "slim/ir/error.h"

namespace slim {

std::string reset_head(Graph& g, int64_t classes, uint64_t seed) {
  SLIM_CHECK(classes > 0, "reset_head: classes ", classes, " must be positive");
  SLIM_CHECK(g.outputs.size() == 1, "reset_head: the model has ", g.outputs.size(),
             " outputs; a classifier has one");
  int idx = g.producer(g.outputs[0].name);
  SLIM_CHECK(idx >= 0, "reset_head: output '", g.outputs[0].name, "' has no producing node");
  if (g.nodes[idx].op_type == "Softmax" || g.nodes[idx].op_type == "LogSoftmax")
    idx = g.producer(g.nodes[idx].inputs.at(0));
  SLIM_CHECK(idx >= 0 && g.nodes[idx].op_type == "Gemm", "reset_head: output '",
             g.outputs[0].name, "' does not come from a Gemm (it comes from ",
             idx >= 0 ? g.nodes[idx].label() : std::string("no node"),
             "); only a final fully-connected layer can be replaced");
  Node& fc = g.nodes[idx];
  SLIM_CHECK(fc.inputs.size() >= 2 && g.is_initializer(fc.inputs[1]), "reset_head: Gemm '",
             fc.label(), "' reads its weight from a computed value, not an initializer");
  SLIM_CHECK(fc.i("transA", 0) == 0, "reset_head: Gemm '", fc.label(), "' has transA = 1");
  const bool trans_b = fc.i("transB", 0) != 0;
  const at::Tensor& w = g.initializers.at(fc.inputs[1]);
  SLIM_CHECK(w.dim() == 2, "reset_head: Gemm '", fc.label(), "' weight has rank ", w.dim());
  const int64_t in = trans_b ? w.size(1) : w.size(0);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::Tensor nw = at::empty(trans_b ? std::vector<int64_t>{classes, in}
                                    : std::vector<int64_t>{in, classes},
                            w.options())
                      .uniform_(-bound, bound, gen);
  // New names: another reader of the old tensors keeps them.
  auto fresh = [&](const std::string& base) {
    std::string name = base + "_reset";
    for (int k = 2; g.is_initializer(name) || g.value_info.count(name); ++k)
      name = base + "_reset" + std::to_string(k);
    return name;
  };
  const std::string wname = fresh(fc.inputs[1]);
  g.initializers[wname] = nw;
  fc.inputs[1] = wname;
  at::Tensor nb = at::empty({classes}, w.options()).uniform_(-bound, bound, gen);
  if (fc.inputs.size() >= 3 && !fc.inputs[2].empty()) {
    SLIM_CHECK(g.is_initializer(fc.inputs[2]), "reset_head: Gemm '", fc.label(),
               "' reads its bias from a computed value, not an initializer");
    const std::string bname = fresh(fc.inputs[2]);
    g.initializers[bname] = nb;
    fc.inputs[2] = bname;
  } else {
    const std::string bname = fresh(fc.label() + "_bias");
    g.initializers[bname] = at::zeros({classes}, w.options());
    fc.inputs.resize(3);
    fc.inputs[2] = bname;
  }
  // The new layer trains; the old tensors go unless something else reads them.
  g.trainable.insert(fc.inputs[1]);
  g.trainable.insert(fc.inputs[2]);
  const std::string result = fc.name.empty() ? fc.label() : fc.name;
  g.remove_dead();  // may move nodes: `fc` is not used after this
  auto& out = g.outputs[0];
  if (out.has_shape && out.shape.size() == 2) out.shape[1] = classes;
  g.value_info.clear();
  infer_shapes(g);
  return result;
}

}  // namespace slim
