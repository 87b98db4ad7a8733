#include "slim/analysis/summary.h"

#include <iomanip>
#include <sstream>

#include "slim/analysis/flops.h"
#include "slim/exec/infer_shapes.h"
#include "slim/onnx/onnx_io.h"
#include "slim/passes/fold_constants.h"

namespace slim {

Graph load_for_analysis(const std::string& path, const std::string& input_shapes) {
  Graph g = onnx_load(path);
  if (!input_shapes.empty()) set_input_shapes(g, parse_input_shapes(input_shapes));
  infer_shapes(g);
  // Folding only replaces values by initializers: the shapes inferred for the rest still hold.
  fold_constants(g);
  return g;
}

ModelSummary summarize(const Graph& g, const std::string& path) {
  ModelSummary s;
  s.path = path;
  s.graph_name = g.name;
  s.producer = g.producer_name + (g.producer_version.empty() ? "" : " " + g.producer_version);
  s.opset = g.opset;
  s.file_bytes = path.empty() ? 0 : file_size(path);
  s.inputs = g.inputs;
  s.outputs = g.outputs;
  s.ops = g.op_histogram();
  s.nodes = static_cast<int64_t>(g.nodes.size());
  s.params = count_params(g);
  s.flops = count_flops(g, false).total;
  s.flops_all = count_flops(g, true).total;
  return s;
}

nlohmann::json to_json(const ValueInfo& v) {
  nlohmann::json j;
  j["name"] = v.name;
  j["dtype"] = dtype_name(v.dtype);
  j["shape"] = v.has_shape ? nlohmann::json(v.shape) : nlohmann::json(nullptr);
  return j;
}

nlohmann::json to_json(const ModelSummary& s) {
  nlohmann::json j;
  j["file"] = s.path;
  j["graph"] = s.graph_name;
  j["producer"] = s.producer;
  j["opset"] = s.opset;
  j["file_bytes"] = s.file_bytes;
  j["inputs"] = nlohmann::json::array();
  for (const auto& v : s.inputs) j["inputs"].push_back(to_json(v));
  j["outputs"] = nlohmann::json::array();
  for (const auto& v : s.outputs) j["outputs"].push_back(to_json(v));
  j["ops"] = s.ops;
  j["nodes"] = s.nodes;
  j["params"] = s.params.count;
  j["param_bytes"] = s.params.bytes;
  j["flops"] = s.flops;
  j["flops_all"] = s.flops_all;
  return j;
}

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > (v < 0 ? 1 : 0); i -= 3) s.insert(i, ",");
  return s;
}

namespace {
std::string human_bytes(int64_t b) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(2);
  if (b >= (1 << 20))
    os << static_cast<double>(b) / (1 << 20) << " MiB";
  else if (b >= (1 << 10))
    os << static_cast<double>(b) / (1 << 10) << " KiB";
  else
    os << b << " B";
  return os.str();
}
}  // namespace

std::string to_text(const ModelSummary& s) {
  std::ostringstream os;
  os << "model     " << s.path << " (graph '" << s.graph_name << "', opset " << s.opset
     << (s.producer.empty() ? "" : ", from " + s.producer) << ")\n";
  for (const auto& v : s.inputs)
    os << "input     " << v.name << " " << dtype_name(v.dtype) << "[" << v.shape_str() << "]\n";
  for (const auto& v : s.outputs)
    os << "output    " << v.name << " " << dtype_name(v.dtype) << "[" << v.shape_str() << "]\n";
  os << "nodes     " << s.nodes << ":";
  for (const auto& [op, n] : s.ops) os << " " << op << " x" << n;
  os << "\n";
  os << "params    " << with_commas(s.params.count) << " (" << human_bytes(s.params.bytes) << " in "
     << s.params.tensors << " initializers)\n";
  os << "file      " << human_bytes(s.file_bytes) << " (" << s.file_bytes << " bytes)\n";
  os << "FLOPs     " << with_commas(s.flops) << " (conv + fc, per image)\n";
  os << "FLOPs all " << with_commas(s.flops_all) << " (with pool, BN, activations)\n";
  return os.str();
}

}  // namespace slim
