#include "slim/quant/quantize_weights.h"

#include <map>
#include <set>

#include "slim/quant/quant_targets.h"
#include "slim/quant/quantize_qdq.h"

namespace slim {

WeightOnlyReport quantize_weights(Graph& g, int bits, const QuantOptions& opts) {
  SLIM_CHECK(bits >= 2 && bits <= 16, "weight-only quantization: --bits must be in 2..16, got ",
             bits);
  QuantOptions o = opts;
  o.weight_bits = bits;
  check_quant_options(o);
  check_not_quantized(g, "weight-only quantization");
  const bool per_channel = o.weight_algo == WeightQuantAlgo::kChannelWiseAbsMax;
  SLIM_CHECK(bits > 8 || !per_channel || g.opset >= 13,
             "per-channel int8 weights need ONNX opset >= 13; the model has opset ", g.opset,
             " (use weight_quantize_type abs_max or --bits 16)");
  WeightOnlyReport r;
  std::vector<QuantTarget> targets = find_quant_targets(g, o, &r.skipped);
  SLIM_CHECK(!targets.empty(), "weight-only quantization: nothing to quantize (no Conv/Gemm/MatMul"
             " with a constant float weight outside not_quant_pattern)");
  std::map<std::string, std::string> done;  // weight -> its dequantized value
  std::vector<Node> out;
  NameMaker fresh(g);
  std::map<std::string, const QuantTarget*> by_node;
  for (const auto& t : targets) by_node[t.node] = &t;
  for (const Node& orig : g.nodes) {
    auto it = by_node.find(orig.name);
    if (it == by_node.end()) {
      out.push_back(orig);
      continue;
    }
    const QuantTarget& t = *it->second;
    if (!done.count(t.weight)) {
      const at::Tensor w = g.initializers.at(t.weight);
      const int64_t axis = per_channel ? t.weight_axis : -1;
      auto [q, step] = quantize_weight(w, bits, axis);
      r.float_bytes += w.numel() * 4;
      r.stored_bytes += q.numel() * q.element_size() + step.numel() * 4;
      std::string qn = fresh(t.weight + "_quantized");
      std::string sn = fresh(t.weight + "_scale");
      g.initializers[qn] = q;
      std::string value = fresh(t.weight + "_dequantized");
      if (bits <= 8) {
        std::string zn = fresh(t.weight + "_zero_point");
        g.initializers[sn] = step;
        g.initializers[zn] = at::zeros_like(step).to(at::kChar);
        Node d;
        d.op_type = "DequantizeLinear";
        d.name = fresh(t.weight + "_dequantize");
        d.inputs = {qn, sn, zn};
        d.outputs = {value};
        if (axis >= 0) d.attrs["axis"] = axis;
        out.push_back(d);
      } else {
        std::vector<int64_t> shape(w.dim(), 1);
        if (axis >= 0) shape[axis] = w.size(axis);
        g.initializers[sn] = axis >= 0 ? step.reshape(shape) : step;
        Node c;
        c.op_type = "Cast";
        c.name = fresh(t.weight + "_cast");
        c.inputs = {qn};
        c.outputs = {fresh(t.weight + "_float")};
        c.attrs["to"] = int64_t{1};  // FLOAT
        Node m;
        m.op_type = "Mul";
        m.name = fresh(t.weight + "_dequantize");
        m.inputs = {c.outputs[0], sn};
        m.outputs = {value};
        out.push_back(c);
        out.push_back(m);
      }
      done[t.weight] = value;
      ++r.weights;
    }
    Node n = orig;
    n.inputs[1] = done.at(t.weight);
    out.push_back(std::move(n));
  }
  install_rewrite(g, std::move(out));
  return r;
}

}  // namespace slim
