#include "slim/quant/quantize_embedding.h"

#include <regex>
#include <set>

#include "slim/quant/fake_quant.h"
#include "slim/quant/quant_targets.h"

namespace slim {

EmbeddingReport quantize_embedding(Graph& g, const EmbeddingOptions& o) {
  SLIM_CHECK(o.threshold >= 0, "embedding quantization: threshold must be >= 0, got ",
             o.threshold);
  std::regex re;
  try {
    re = std::regex(o.pattern.empty() ? ".*" : o.pattern);
  } catch (const std::regex_error& e) {
    SLIM_FAIL("embedding pattern '", o.pattern, "' is not a valid regex: ", e.what());
  }
  check_not_quantized(g, "embedding quantization");
  EmbeddingReport r;
  NameMaker fresh(g);
  struct Stored {
    std::string levels, scale, zero_point;
  };
  std::map<std::string, Stored> tables;  // float table -> its int8 form
  std::vector<Node> out;
  for (const Node& orig : g.nodes) {
    auto it = g.initializers.find(orig.input(0));
    bool match = orig.op_type == "Gather" && (orig.domain.empty() || orig.domain == "ai.onnx") &&
                 it != g.initializers.end() && it->second.scalar_type() == at::kFloat &&
                 it->second.dim() == 2 && std::regex_search(orig.name, re);
    if (!match) {
      out.push_back(orig);
      continue;
    }
    const std::string& table = orig.input(0);
    for (int c : g.consumers(table))
      SLIM_CHECK(g.nodes[c].op_type == "Gather", "embedding table '", table, "' is also read by ",
                 g.nodes[c].label(), "; only tables read by Gather alone are quantized");
    if (!tables.count(table)) {
      at::Tensor w = it->second;
      double mx = w.abs().max().item<double>();
      double s = mx;
      if (o.threshold > 0) {
        s = std::min(o.threshold, mx);
      } else if (mx >= 1) {
        at::Tensor sorted = std::get<0>(w.abs().flatten().sort());
        int64_t k = static_cast<int64_t>(0.9999 * static_cast<double>(sorted.numel() - 1));
        s = sorted[k].item<double>();
      }
      if (s <= 0) s = 1;  // an all-zero table
      at::Tensor q = quantize_symmetric(w, at::scalar_tensor(s), 8).to(at::kChar);
      std::string qn = fresh(table + "_quantized");
      std::string sn = fresh(table + "_scale");
      std::string zn = fresh(table + "_zero_point");
      g.initializers[qn] = q;
      g.initializers[sn] = at::scalar_tensor(static_cast<float>(s / 127.0), at::kFloat);
      g.initializers[zn] = at::scalar_tensor(0, at::kChar);
      tables[table] = {qn, sn, zn};
      r.float_bytes += w.numel() * 4;
      r.stored_bytes += q.numel() + 4 + 1;
      r.thresholds.push_back(table + ": " + std::to_string(s));
      ++r.tables;
    }
    const Stored& st = tables.at(table);
    Node gather = orig;
    gather.inputs[0] = st.levels;
    const std::string y = orig.outputs[0];
    gather.outputs[0] = fresh(y + "_quantized");
    Node d;
    d.op_type = "DequantizeLinear";
    d.name = fresh(orig.name + "_dequantize");
    d.inputs = {gather.outputs[0], st.scale, st.zero_point};
    d.outputs = {y};
    out.push_back(gather);
    out.push_back(d);
  }
  SLIM_CHECK(r.tables > 0, "embedding quantization: no Gather reads a 2-D float initializer",
             o.pattern.empty() ? "" : " among nodes matching '" + o.pattern + "'",
             "; nothing to quantize");
  install_rewrite(g, std::move(out));
  return r;
}

}  // namespace slim
