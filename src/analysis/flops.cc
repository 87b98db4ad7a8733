#include "slim/analysis/flops.h"

namespace slim {

namespace {

std::vector<int64_t> need_shape(const Graph& g, const Node& n, const std::string& v) {
  auto s = g.shape_of(v);
  SLIM_CHECK(s.has_value(), n.label(), ": shape of '", v,
             "' is unknown; run shape inference with an input shape (--input)");
  return *s;
}

/// Element count of one sample: the leading (batch) dim is left out.
int64_t per_sample_numel(const std::vector<int64_t>& s) {
  int64_t e = 1;
  for (size_t d = 1; d < s.size(); ++d) e *= s[d];
  return s.empty() ? 1 : e;
}

bool is_activation(const std::string& op) {
  return op == "Relu" || op == "LeakyRelu" || op == "Sigmoid" || op == "HardSigmoid" ||
         op == "HardSwish" || op == "Tanh" || op == "Clip" || op == "PRelu" || op == "Elu" ||
         op == "Selu" || op == "Celu" || op == "Softplus" || op == "Softsign" ||
         op == "ThresholdedRelu";
}

bool is_normalization(const std::string& op) {
  return op == "BatchNormalization" || op == "InstanceNormalization" || op == "LayerNormalization";
}

}  // namespace

FlopsReport count_flops(const Graph& g, bool all_ops) {
  FlopsReport r;
  for (const auto& n : g.nodes) {
    int64_t f = 0;
    if (n.op_type == "Conv") {
      auto out = need_shape(g, n, n.outputs[0]);
      auto w = need_shape(g, n, n.input(1));
      // per image: prod(out spatial) * C_out * (C_in/group * prod(kernel))
      f = per_sample_numel(out);
      for (size_t d = 1; d < w.size(); ++d) f *= w[d];
    } else if (n.op_type == "ConvTranspose") {
      // Every input element is multiplied into a C_out/group x kernel block of the output:
      // prod(in spatial) * C_in * (C_out/group * prod(kernel)). PaddleSlim counts no transposed
      // conv; Slim does, as the MACs it runs.
      auto in = need_shape(g, n, n.input(0));
      auto w = need_shape(g, n, n.input(1));
      f = per_sample_numel(in);
      for (size_t d = 1; d < w.size(); ++d) f *= w[d];
    } else if (n.op_type == "Gemm" || n.op_type == "MatMul") {
      auto a = need_shape(g, n, n.input(0));
      auto out = need_shape(g, n, n.outputs[0]);
      int64_t k;
      if (n.op_type == "Gemm")
        k = n.i("transA", 0) ? a.at(0) : a.at(1);
      else
        k = a.back();
      f = (out.size() >= 2 ? per_sample_numel(out) : (out.empty() ? 1 : out[0])) * k;
    } else if (all_ops) {
      if (n.op_type == "MaxPool" || n.op_type == "AveragePool") {
        auto out = need_shape(g, n, n.outputs[0]);
        f = per_sample_numel(out);
        for (auto k : n.ints("kernel_shape")) f *= k;
      } else if (is_normalization(n.op_type) || is_activation(n.op_type)) {
        f = per_sample_numel(need_shape(g, n, n.input(0)));
      }
    }
    if (f > 0) {
      r.per_node.push_back({n.name, n.op_type, f});
      r.total += f;
    }
  }
  return r;
}

}  // namespace slim
