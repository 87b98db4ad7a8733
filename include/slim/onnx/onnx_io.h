#pragma once
/// ONNX file format in and out. Import accepts default-domain opsets 11-17 and the ops the
/// executor implements; a model below opset 11 is upgraded to kUpgradeOpset with ONNX's own
/// version converter (Graph::upgraded_from_opset; `slim` says so in one line). Export runs
/// onnx::checker and writes atomically (temp file + rename).
#include <string>

#include "slim/ir/graph.h"

namespace slim {

constexpr int64_t kMinOpset = 11;
constexpr int64_t kMaxOpset = 17;
/// What a model below kMinOpset is upgraded to: ONNX 1.12's converter upgraded 140 of 140 of its
/// PyTorch-exported model tests (opsets 6-9) to 13 once their shapes were inferred.
constexpr int64_t kUpgradeOpset = 13;

/// Loads an .onnx file. Errors name the file and what is wrong (missing, not ONNX, truncated,
/// unsupported opset, an old opset the converter could not upgrade with its reason, unsupported
/// op with the list of supported ones). Graph::upgraded_from_opset tells an upgraded model.
Graph onnx_load(const std::string& path);
/// Parses a serialized ModelProto; `origin` names it in error messages.
Graph onnx_parse(const std::string& bytes, const std::string& origin,
                 const std::string& base_dir = ".");
/// Serializes to a ModelProto (checked by onnx::checker).
std::string onnx_serialize(const Graph& g);
/// `g` converted to `opset` (above its own, at most kMaxOpset) by ONNX's version converter, as
/// old models are on load; `what` names the graph in errors. Graph::upgraded_from_opset is set.
Graph onnx_convert_opset(const Graph& g, int64_t opset, const std::string& what);
/// Writes `g` to `path`: serialize + check into a temp file beside it, then rename. Nothing the
/// user had at `path` is touched if anything fails.
void onnx_save(const Graph& g, const std::string& path);

/// Reads a serialized TensorProto file (ONNX test data `input_0.pb`).
at::Tensor onnx_load_tensor(const std::string& path);

/// Writes `bytes` to `path` atomically (temp file in the same directory, then rename).
void write_file_atomic(const std::string& path, const std::string& bytes);
/// Reads a whole file; errors name the file.
std::string read_file(const std::string& path);

}  // namespace slim
