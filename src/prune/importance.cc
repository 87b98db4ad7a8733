#include "slim/prune/importance.h"

#include <algorithm>
#include <numeric>

namespace slim {

Criterion criterion_from_string(const std::string& name) {
  if (name == "l1_norm") return Criterion::kL1Norm;
  if (name == "l2_norm") return Criterion::kL2Norm;
  if (name == "l0_norm") return Criterion::kL0Norm;
  if (name == "fpgm" || name == "geometry_median") return Criterion::kFpgm;
  if (name == "bn_scale") return Criterion::kBnScale;
  SLIM_FAIL("unknown pruning criterion '", name,
            "'; valid: l1_norm, l2_norm, l0_norm, fpgm (geometry_median), bn_scale");
}

std::string criterion_name(Criterion c) {
  switch (c) {
    case Criterion::kL1Norm:
      return "l1_norm";
    case Criterion::kL2Norm:
      return "l2_norm";
    case Criterion::kL0Norm:
      return "l0_norm";
    case Criterion::kFpgm:
      return "fpgm";
    case Criterion::kBnScale:
      return "bn_scale";
  }
  return "?";
}

namespace {

/// |gamma| of the BatchNormalization that reads the output of the conv whose weight is `param`.
at::Tensor bn_scale_of(const Graph& g, const std::string& param) {
  for (int i : g.consumers(param)) {
    const Node& conv = g.nodes[i];
    if (conv.op_type != "Conv" || conv.input(1) != param) continue;
    for (int j : g.consumers(conv.outputs[0])) {
      const Node& bn = g.nodes[j];
      if (bn.op_type == "BatchNormalization" && bn.inputs[0] == conv.outputs[0] &&
          g.is_initializer(bn.input(1)))
        return g.initializers.at(bn.input(1)).abs();
    }
    SLIM_FAIL("criterion bn_scale: ", conv.label(), " (weight '", param,
              "') is not followed by a BatchNormalization with a constant scale");
  }
  SLIM_FAIL("criterion bn_scale: '", param, "' is not the weight of a Conv");
}

}  // namespace

std::vector<double> filter_importance(const Graph& g, const std::string& param, Criterion c) {
  SLIM_CHECK(g.is_initializer(param), "unknown param '", param, "'");
  at::Tensor w = g.initializers.at(param).detach().to(at::kDouble);
  SLIM_CHECK(w.dim() >= 1 && w.size(0) > 0, "param '", param, "' has no filters");
  w = w.reshape({w.size(0), -1});
  at::Tensor s;
  switch (c) {
    case Criterion::kL1Norm:
      s = w.abs().sum(1);
      break;
    case Criterion::kL2Norm:
      s = w.pow(2).sum(1).sqrt();
      break;
    case Criterion::kL0Norm:
      s = w.ne(0).sum(1).to(at::kDouble);
      break;
    case Criterion::kFpgm:
      s = at::cdist(w.unsqueeze(0), w.unsqueeze(0)).squeeze(0).sum(1);
      break;
    case Criterion::kBnScale:
      s = bn_scale_of(g, param).to(at::kDouble).contiguous();
      break;
  }
  s = s.contiguous();
  return std::vector<double>(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
}

std::vector<int64_t> lowest_indices(const std::vector<double>& scores, int64_t count) {
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return scores[a] < scores[b]; });
  order.resize(static_cast<size_t>(std::clamp<int64_t>(count, 0, order.size())));
  std::sort(order.begin(), order.end());
  return order;
}

}  // namespace slim
