#pragma once
/// What `slim info` reports about a model, as a struct, text and JSON.
#include <nlohmann/json.hpp>
#include <string>

#include "slim/analysis/model_stats.h"
#include "slim/ir/graph.h"

namespace slim {

/// Loads an ONNX file for analysis: applies user input shapes ("3,224,224", see
/// parse_input_shapes; empty keeps the declared ones), infers shapes and folds constant shape
/// sub-graphs.
Graph load_for_analysis(const std::string& path, const std::string& input_shapes = "");

struct ModelSummary {
  std::string path;
  std::string graph_name;
  std::string producer;
  int64_t opset = 0;
  int64_t file_bytes = 0;
  std::vector<ValueInfo> inputs, outputs;
  std::map<std::string, int> ops;
  int64_t nodes = 0;
  ParamStats params;
  int64_t flops = 0;      ///< conv + fc (PaddleSlim default)
  int64_t flops_all = 0;  ///< with pooling, BN and activations
};

/// Summarizes a graph prepared by load_for_analysis; `path` is the file it came from.
ModelSummary summarize(const Graph& g, const std::string& path);
nlohmann::json to_json(const ModelSummary& s);
std::string to_text(const ModelSummary& s);
/// {"name":..., "dtype":..., "shape":[...]} with -1 for dynamic dims.
nlohmann::json to_json(const ValueInfo& v);

/// `v` with thousands separators: 12,973,736 (what `slim info`, the pipeline's table and its
/// report print).
std::string with_commas(int64_t v);

}  // namespace slim
