#include "slim/passes/relax_batch.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "slim/exec/executor.h"
#include "slim/exec/infer_shapes.h"
#include "slim/ir/error.h"

namespace slim {

namespace {

/// A Reshape target with a leading 1 as a new tensor with a leading 0, or undefined.
at::Tensor batch_free_target(const at::Tensor& t) {
  if (!t.defined() || t.dim() != 1 || t.numel() < 1 || t.scalar_type() != at::kLong) return {};
  if (t[0].item<int64_t>() != 1) return {};
  at::Tensor r = t.clone();
  r[0] = 0;
  return r;
}

/// Rewrites the Reshape targets of `g`; returns how many.
int relax_reshapes(Graph& g) {
  std::map<std::string, Node*> constant_of;
  for (auto& n : g.nodes)
    if (n.op_type == "Constant" && n.has("value") && !n.outputs.empty())
      constant_of[n.outputs[0]] = &n;
  int count = 0;
  for (auto& n : g.nodes) {
    if (n.op_type != "Reshape" || n.inputs.size() < 2 || n.i("allowzero", 0) != 0) continue;
    const std::string& target = n.inputs[1];
    if (g.is_initializer(target)) {
      at::Tensor r = batch_free_target(g.initializers.at(target));
      if (!r.defined()) continue;
      // A new initializer: another reader of the old one keeps its value.
      std::string name = target + "_any_batch";
      for (int k = 2; g.is_initializer(name) || g.value_info.count(name); ++k)
        name = target + "_any_batch" + std::to_string(k);
      g.initializers[name] = r;
      n.inputs[1] = name;
      ++count;
    } else if (auto it = constant_of.find(target); it != constant_of.end()) {
      at::Tensor r = batch_free_target(it->second->t("value"));
      if (!r.defined()) continue;
      it->second->attrs["value"] = r;
      ++count;
    }
  }
  return count;
}

/// Random inputs at batch 1 for every graph input, or "" and the reason in `why`.
std::vector<at::Tensor> sample_inputs(const Graph& g, at::Generator& gen, std::string* why) {
  std::vector<at::Tensor> xs;
  for (const auto& in : g.inputs) {
    for (size_t d = 1; d < in.shape.size(); ++d) {
      if (in.shape[d] < 0) {
        *why = "input '" + in.name + "' has a symbolic dim besides the batch (" + in.shape_str() +
               "), so it cannot be checked";
        return {};
      }
    }
    if (in.dtype != at::kFloat) {
      *why = "input '" + in.name + "' is not float32, so it cannot be checked";
      return {};
    }
    xs.push_back(at::randn(in.shape, gen, at::TensorOptions().dtype(at::kFloat)));
  }
  return xs;
}

}  // namespace

RelaxBatchReport relax_batch(Graph& g, uint64_t seed) {
  RelaxBatchReport rep;
  if (g.inputs.empty()) return rep;
  for (const auto& in : g.inputs)
    if (!in.has_shape || in.shape.empty() || in.shape[0] != 1) return rep;
  rep.applicable = true;

  // A shallow copy: the rewrite adds initializers and replaces Constant values, never writes a
  // shared tensor, and the executors below only read them.
  Graph r = g;
  for (auto& in : r.inputs) {
    in.shape[0] = kDynamicDim;
    in.dim_names.resize(in.shape.size());
    in.dim_names[0] = "N";
  }
  for (auto& out : r.outputs) {
    if (out.has_shape && !out.shape.empty() && out.shape[0] == 1) {
      out.shape[0] = kDynamicDim;
      out.dim_names.resize(out.shape.size());
      out.dim_names[0] = "N";
    }
  }
  rep.reshapes = relax_reshapes(r);
  r.value_info.clear();
  try {
    infer_shapes(r);
  } catch (const Error& e) {
    rep.reason = std::string("shape inference at a symbolic batch failed: ") + error_brief(e);
    return rep;
  }

  at::Generator gen = at::detail::createCPUGenerator(seed);
  std::vector<at::Tensor> a = sample_inputs(g, gen, &rep.reason);
  if (a.empty()) return rep;
  std::vector<at::Tensor> b = sample_inputs(g, gen, &rep.reason);
  std::vector<at::Tensor> both;
  for (size_t k = 0; k < a.size(); ++k) both.push_back(at::cat({a[k], b[k]}, 0));
  std::vector<at::Tensor> ya, yb, y2;
  try {
    Executor one(g);
    ya = one.run(a);
    yb = one.run(b);
    Executor two(r);
    y2 = two.run(both);
  } catch (const Error& e) {
    rep.reason = std::string("running it at batch 2 failed: ") + error_brief(e);
    return rep;
  }
  for (size_t k = 0; k < ya.size(); ++k) {
    const std::string& name = g.outputs[k].name;
    if (y2[k].dim() == 0 || y2[k].size(0) != 2 || ya[k].dim() == 0 || ya[k].size(0) != 1) {
      rep.reason = "output '" + name + "' does not carry the batch in its first dim";
      return rep;
    }
    at::Tensor want = at::cat({ya[k], yb[k]}, 0).to(at::kDouble);
    const double scale = std::max(1.0, want.abs().max().item<double>());
    const double err = (y2[k].to(at::kDouble) - want).abs().max().item<double>();
    if (!(err <= 1e-4 * scale)) {
      rep.reason = "at batch 2 output '" + name + "' differs from two batch-1 runs by " +
                   std::to_string(err) + " (largest value " + std::to_string(scale) + ")";
      return rep;
    }
  }
  g = std::move(r);
  rep.relaxed = true;
  return rep;
}

}  // namespace slim
