#include "slim/quant/quantize_qdq.h"

#include <map>
#include <set>

#include "slim/quant/fake_quant.h"
#include "slim/quant/quant_targets.h"

namespace slim {

std::pair<at::Tensor, at::Tensor> quantize_weight(const at::Tensor& w, int bits, int64_t axis,
                                                  bool bias_correction) {
  at::NoGradGuard no_grad;
  at::Tensor wf = w.detach().to(at::kFloat);
  at::Tensor s = abs_max(wf, axis);
  at::Tensor q = quantize_symmetric(wf, s, bits, axis);
  const double b = static_cast<double>(quant_bound(bits));
  at::Tensor step = at::where(s > 0, s / b, at::ones_like(s));
  if (bias_correction) {
    // PaddleSlim's bias_correction_w: shift each channel (the whole tensor with one scale) by its
    // mean quantization error and restore its standard deviation (population), then quantize
    // again with the same scales.
    const int64_t slices = axis >= 0 ? wf.size(axis) : 1;
    std::vector<int64_t> shape(wf.dim(), 1);
    if (axis >= 0) shape[axis] = slices;
    at::Tensor dq = q * step.reshape(shape);
    auto per_slice = [&](const at::Tensor& t) {
      return (axis >= 0 ? t.transpose(0, axis) : t).reshape({slices, -1});
    };
    at::Tensor mean_err = (per_slice(wf) - per_slice(dq)).mean(1);
    at::Tensor ratio = per_slice(wf).std(1, false) / (per_slice(dq).std(1, false) + 1e-8);
    at::Tensor adjusted = (dq + mean_err.reshape(shape)) * ratio.reshape(shape);
    q = quantize_symmetric(adjusted, s, bits, axis);
  }
  at::ScalarType st = bits <= 8 ? at::kChar : at::kShort;
  return {q.to(st), step.to(at::kFloat)};
}

namespace {

at::Tensor scalar(double v, at::ScalarType t) { return at::scalar_tensor(v, at::kDouble).to(t); }

Node make_node(const std::string& op, const std::string& name,
               std::vector<std::string> inputs, const std::string& output) {
  Node n;
  n.op_type = op;
  n.name = name;
  n.inputs = std::move(inputs);
  n.outputs = {output};
  return n;
}

}  // namespace

void check_qdq_options(const QuantOptions& o) {
  check_quant_options(o);
  SLIM_CHECK(o.act_bits == 8, "QDQ export stores 8-bit activations; activation_bits is ",
             o.act_bits);
  SLIM_CHECK(o.weight_bits <= 8, "QDQ export stores int8 weights; weight_bits is ", o.weight_bits,
             " (use weight-only quantization for 16-bit weights)");
}

QdqReport quantize_qdq(Graph& g, const ScaleTable& table, const QuantOptions& o,
                       bool bias_correction) {
  check_qdq_options(o);
  check_not_quantized(g, "quantization");
  const bool per_channel = o.weight_algo == WeightQuantAlgo::kChannelWiseAbsMax;
  SLIM_CHECK(!per_channel || g.opset >= 13, "per-channel weight scales need ONNX opset >= 13; ",
             "the model has opset ", g.opset, " (use weight_quantize_type abs_max)");
  for (const auto& n : g.nodes)
    SLIM_CHECK(n.op_type != "BatchNormalization" || g.consumers(n.input(0)).size() != 1 ||
                   g.producer(n.input(0)) < 0 || g.nodes[g.producer(n.input(0))].op_type != "Conv",
               n.label(), " follows a Conv: fold batch norm before quantizing (fold_batch_norm)");
  QdqReport report;
  std::vector<QuantTarget> targets = find_quant_targets(g, o, &report.skipped);
  SLIM_CHECK(!targets.empty(), "nothing to quantize in the model: no node of type ",
             [&] {
               std::string s;
               for (const auto& t : o.quantize_op_types) s += (s.empty() ? "" : "/") + t;
               return s;
             }(),
             " with a constant weight outside not_quant_pattern");
  std::vector<std::string> values = quantized_values(targets);
  std::map<std::string, const QuantTarget*> by_node;
  for (const auto& t : targets) by_node[t.node] = &t;
  for (const auto& v : values)
    SLIM_CHECK(table.activations.count(v), "the scale table has no threshold for activation '",
               v, "'", [&] {
                 for (const auto& t : targets)
                   if (t.activation == v) return " read by node '" + t.node + "'";
                 for (const auto& t : targets)
                   if (t.output == v) return " written by node '" + t.node + "'";
                 return std::string();
               }(),
               " (calibrate with the same quantization options)");
  // The ONNX scale of each quantized value: threshold / 127, or / 255 when unsigned.
  auto act_step = [&](const std::string& v) {
    const ActivationScale& a = table.activations.at(v);
    const double levels = static_cast<double>(quant_levels(8, a.is_unsigned));
    return static_cast<double>(static_cast<float>(a.threshold / levels));
  };

  NameMaker fresh(g);
  auto new_init = [&](const std::string& base, const at::Tensor& t) {
    std::string name = fresh(base);
    g.initializers[name] = t;
    return name;
  };
  auto dq_node = [&](const std::string& base, std::vector<std::string> inputs, int64_t axis) {
    Node d = make_node("DequantizeLinear", fresh(base + "_dequantize"), std::move(inputs),
                       fresh(base + "_dequantized"));
    if (axis >= 0) d.attrs["axis"] = axis;
    return d;
  };
  std::vector<Node> out;
  out.reserve(g.nodes.size() * 3);
  std::map<std::pair<std::string, int64_t>, std::pair<std::string, at::Tensor>> w_dq;
  for (const Node& orig : g.nodes) {
    auto tit = by_node.find(orig.name);
    if (tit == by_node.end()) {
      out.push_back(orig);
      continue;
    }
    const QuantTarget& t = *tit->second;
    Node n = orig;
    // Weight: int8 levels and per-channel (or one) scale.
    const int64_t axis = per_channel ? t.weight_axis : -1;
    auto wkey = std::make_pair(t.weight, axis);
    if (!w_dq.count(wkey)) {
      auto [q, step] = quantize_weight(g.initializers.at(t.weight), o.weight_bits, axis,
                                       bias_correction);
      std::string qn = new_init(t.weight + "_quantized", q);
      std::string sn = new_init(t.weight + "_scale", step);
      std::string zn = new_init(t.weight + "_zero_point", at::zeros_like(step).to(at::kChar));
      Node d = dq_node(t.weight, {qn, sn, zn}, axis);
      w_dq[wkey] = {d.outputs[0], step};
      out.push_back(std::move(d));
      ++report.weights;
    }
    const auto& [w_name, w_step] = w_dq.at(wkey);
    // Bias: int32 with scale s_a * s_W, so integer kernels add it to their accumulator.
    if (!t.bias.empty()) {
      at::Tensor b = g.initializers.at(t.bias).to(at::kFloat);
      at::Tensor bstep = (w_step * act_step(t.activation)).expand({b.size(0)}).contiguous();
      at::Tensor bq =
          at::clamp(at::round(b / bstep), -2147483647.0, 2147483647.0).to(at::kInt);
      std::string qn = new_init(t.bias + "_quantized", bq);
      std::string sn = new_init(t.bias + "_scale", bstep);
      std::string zn = new_init(t.bias + "_zero_point", at::zeros({b.size(0)}, at::kInt));
      Node d = dq_node(t.bias, {qn, sn, zn}, 0);
      n.inputs[2] = d.outputs[0];
      out.push_back(std::move(d));
    }
    n.inputs[1] = w_name;
    out.push_back(std::move(n));
    ++report.nodes;
  }
  // Activations: one QuantizeLinear/DequantizeLinear pair per value, right after it is computed,
  // read by all its readers.
  insert_after_values(out, values, [&](const std::string& v) {
    const bool is_unsigned = table.activations.at(v).is_unsigned;
    std::string s = new_init(v + "_scale", scalar(act_step(v), at::kFloat));
    // uint8 in both cases, as ONNX Runtime prefers (it converts int8 pairs only where the
    // QuantizeLinear has one reader): zero point 0 for values >= 0, 128 for signed ones, whose
    // levels are then those of int8 with zero point 0, shifted.
    std::string zp = new_init(v + "_zero_point", scalar(is_unsigned ? 0 : 128, at::kByte));
    Node q = make_node("QuantizeLinear", fresh(v + "_quantize"), {v, s, zp},
                       fresh(v + "_quantized"));
    Node d = dq_node(v, {q.outputs[0], s, zp}, -1);
    ++report.activations;
    return std::vector<Node>{std::move(q), std::move(d)};
  });
  install_rewrite(g, std::move(out));
  return report;
}

}  // namespace slim
