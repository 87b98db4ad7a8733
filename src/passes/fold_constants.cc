#include "slim/passes/fold_constants.h"

#include <limits>

#include "slim/exec/kernel.h"

namespace slim {

namespace {

/// Marks "the batch size" inside folded shape tensors. Far from any real dim, from -1 (infer)
/// and from the INT64 extremes that Slice uses as open ends.
constexpr int64_t kBatchMark = std::numeric_limits<int64_t>::min() / 2 + 12345;

bool has_mark(const at::Tensor& t) {
  return t.scalar_type() == at::kLong && t.numel() > 0 && t.eq(kBatchMark).any().item<bool>();
}

/// Ops that only move integer values around, so a batch mark in their data input survives
/// unchanged and meaningfully.
bool moves_values(const std::string& op) {
  return op == "Gather" || op == "Slice" || op == "Concat" || op == "Unsqueeze" ||
         op == "Squeeze" || op == "Identity" || op == "Reshape" || op == "Flatten";
}

}  // namespace

int fold_constants(Graph& g) {
  std::map<std::string, at::Tensor> consts(g.initializers.begin(), g.initializers.end());
  std::set<std::string> folded;  // values now computed at fold time (no batch mark)
  std::set<int> erase;
  at::NoGradGuard no_grad;
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    Node& n = g.nodes[k];
    bool produces_output = false;
    for (const auto& o : n.outputs) produces_output = produces_output || g.is_output(o);
    // DequantizeLinear stays: its int8 initializer is what the executor's int8 kernels run on
    // (ONNX Runtime's constant folding keeps it for the same reason), and a folded weight would
    // take four times the bytes.
    if (produces_output || n.op_type == "Dropout" || n.op_type == "DequantizeLinear") continue;
    std::vector<at::Tensor> vals;
    if (n.op_type == "Shape") {
      auto shape = g.shape_of(n.input(0));
      if (!shape) continue;
      std::vector<int64_t> dims = *shape;
      for (size_t d = 0; d < dims.size(); ++d)
        if (dims[d] == kDynamicDim) {
          if (d != 0) goto next_node;  // only the batch may stay symbolic
          dims[d] = kBatchMark;
        }
      std::vector<int64_t> sub = shape_op_dims(n, dims);
      vals.push_back(at::tensor(at::ArrayRef<int64_t>(sub), at::kLong));
    } else {
      KernelContext ctx{n, {}, {}, false, g.opset};
      for (size_t i = 0; i < n.inputs.size(); ++i) {
        const auto& in = n.inputs[i];
        if (in.empty()) {
          ctx.in.emplace_back();
          continue;
        }
        auto it = consts.find(in);
        if (it == consts.end()) goto next_node;
        // A batch mark may only flow through the data inputs of value-moving ops.
        bool data_input = i == 0 || n.op_type == "Concat";
        if (has_mark(it->second) && !(data_input && moves_values(n.op_type))) goto next_node;
        ctx.in.push_back(it->second);
      }
      if (n.inputs.empty() && n.op_type != "Constant") continue;
      ctx.out.resize(n.outputs.size());
      KernelFn fn = find_kernel(n.op_type);
      if (!fn) continue;
      fn(ctx);
      vals = std::move(ctx.out);
    }
    {
      bool marked = false;
      for (size_t o = 0; o < n.outputs.size(); ++o) {
        if (n.outputs[o].empty()) continue;
        consts[n.outputs[o]] = vals[o];
        marked = marked || has_mark(vals[o]);
      }
      if (!marked) {
        for (size_t o = 0; o < n.outputs.size(); ++o)
          if (!n.outputs[o].empty()) {
            g.initializers[n.outputs[o]] = vals[o];
            folded.insert(n.outputs[o]);
          }
        erase.insert(static_cast<int>(k));
      }
    }
  next_node:;
  }
  // Resolve batch marks in Reshape targets: the batch entry copies the input's dim (0) when it
  // sits at the batch position, otherwise it is the one inferred dim (-1).
  for (auto& n : g.nodes) {
    if (n.op_type != "Reshape" || n.inputs.size() < 2) continue;
    auto it = consts.find(n.inputs[1]);
    if (it == consts.end() || !has_mark(it->second)) continue;
    auto data_shape = g.shape_of(n.inputs[0]);
    std::vector<int64_t> target = to_int_vector(it->second);
    int marks = 0, minus = 0;
    for (size_t d = 0; d < target.size(); ++d) {
      if (target[d] == kBatchMark && d == 0 && data_shape && !data_shape->empty() &&
          (*data_shape)[0] == kDynamicDim && n.i("allowzero", 0) == 0)
        target[d] = 0;
      marks += target[d] == kBatchMark;
      minus += target[d] == -1;
    }
    if (marks > 1 || (marks == 1 && minus > 0)) continue;
    for (auto& t : target)
      if (t == kBatchMark) t = -1;
    std::string name = g.unique_name(n.name + "_shape");
    g.initializers[name] = at::tensor(at::ArrayRef<int64_t>(target), at::kLong);
    n.inputs[1] = name;
  }
  g.erase_nodes(erase);
  int removed = static_cast<int>(erase.size()) + g.remove_dead();
  for (const auto& v : folded) g.value_info.erase(v);
  return removed;
}

}  // namespace slim
