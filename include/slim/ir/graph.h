#pragma once
/// Slim's graph IR: a Graph of Nodes over named Values, with op types and attributes named as in
/// ONNX and weights as named initializers (ATen tensors). Every compression method is a pass
/// Graph -> Graph; the executor only sees the Graph.
#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "slim/ir/error.h"

namespace slim {

/// Dimension value used for a symbolic (unknown until run time) dimension, e.g. the batch.
constexpr int64_t kDynamicDim = -1;

/// An ONNX attribute value. Graph-valued attributes (If/Loop bodies) are not supported.
using AttrValue = std::variant<int64_t, float, std::string, at::Tensor, std::vector<int64_t>,
                               std::vector<float>, std::vector<std::string>>;

/// One operation. Inputs and outputs name Values; an empty name is an absent optional input.
struct Node {
  std::string name;
  std::string op_type;
  std::string domain;  ///< "" for the default ONNX domain
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  std::map<std::string, AttrValue> attrs;

  bool has(const std::string& key) const { return attrs.count(key) > 0; }
  int64_t i(const std::string& key, int64_t def) const;
  int64_t i(const std::string& key) const;
  float f(const std::string& key, float def) const;
  std::string s(const std::string& key, const std::string& def) const;
  std::vector<int64_t> ints(const std::string& key, const std::vector<int64_t>& def = {}) const;
  std::vector<float> floats(const std::string& key, const std::vector<float>& def = {}) const;
  at::Tensor t(const std::string& key) const;
  /// Input i if present ("" when absent or beyond the list).
  const std::string& input(size_t idx) const;
  /// "Conv 'conv1'" style label for error messages.
  std::string label() const;
};

/// Type and shape of a Value. Dims are >= 0 or kDynamicDim; `dim_names` keeps ONNX dim_param
/// names ("N", "batch") so that export is lossless.
struct ValueInfo {
  std::string name;
  at::ScalarType dtype = at::kFloat;
  bool has_shape = false;
  std::vector<int64_t> shape;
  std::vector<std::string> dim_names;

  std::string shape_str() const;
};

/// Where a Value comes from.
enum class ValueKind { kInput, kInitializer, kNodeOutput, kUnknown };

class Graph {
 public:
  std::string name = "slim";
  int64_t opset = 13;          ///< default-domain opset version
  int64_t ir_version = 8;
  /// The file's opset when import upgraded it (below kMinOpset), else 0.
  int64_t upgraded_from_opset = 0;
  std::map<std::string, int64_t> other_opsets;  ///< non-default domains, kept for export
  std::string producer_name = "slim";
  std::string producer_version;

  std::vector<ValueInfo> inputs;   ///< graph inputs that are not initializers
  std::vector<ValueInfo> outputs;  ///< graph outputs, names stable across passes
  std::vector<Node> nodes;         ///< in topological order
  std::map<std::string, at::Tensor> initializers;
  std::map<std::string, ValueInfo> value_info;  ///< inferred/imported types of intermediates

  // ---- Queries -----------------------------------------------------------------------------
  bool is_initializer(const std::string& v) const { return initializers.count(v) > 0; }
  bool is_input(const std::string& v) const;
  bool is_output(const std::string& v) const;
  ValueKind kind(const std::string& v) const;
  /// Index of the node producing `v`, or -1.
  int producer(const std::string& v) const;
  /// Indices of nodes that read `v`, in order.
  std::vector<int> consumers(const std::string& v) const;
  /// Node by name, or nullptr.
  const Node* find_node(const std::string& node_name) const;
  Node* find_node(const std::string& node_name);
  /// Shape of a Value if known (inputs, initializers, inferred intermediates).
  std::optional<std::vector<int64_t>> shape_of(const std::string& v) const;
  /// Count of ops by type, sorted by type.
  std::map<std::string, int> op_histogram() const;

  // ---- Trainability ------------------------------------------------------------------------
  /// Initializers that training updates (float weights, biases, BN scale/offset). BN running
  /// statistics and integer tensors are never trainable.
  std::set<std::string> trainable;
  /// Marks every float initializer of rank >= 1 trainable except BatchNormalization mean/var
  /// and Clip bounds.
  void mark_default_trainable();
  /// Nodes (by name) that run in inference mode even while the executor trains: a frozen
  /// distillation teacher (BatchNormalization on running statistics, Dropout off). Not exported.
  std::set<std::string> frozen_nodes;

  // ---- Mutation ----------------------------------------------------------------------------
  /// Redirects every use of `from` (node inputs) to `to`. If `from` is a graph output, the
  /// producer of `to` is renamed instead so output names stay stable (requires `to` to be a
  /// node output used nowhere else than where `from` was).
  void replace_all_uses(const std::string& from, const std::string& to);
  /// Erases the nodes with these indices (collect first, then erase).
  void erase_nodes(const std::set<int>& indices);
  /// Removes nodes whose outputs are never used, and initializers nobody reads.
  int remove_dead();
  /// Orders nodes so that producers precede consumers; throws if there is a cycle.
  void topo_sort();
  /// Returns a name not yet used by any value or node, starting from `base`.
  std::string unique_name(const std::string& base) const;

  // ---- Checks and printing -----------------------------------------------------------------
  /// Checks structural invariants: every input defined before use, single producer per value,
  /// outputs produced, unique node names. Throws slim::Error naming the offending node/value.
  void verify() const;
  /// Human-readable text dump, one line per node with shapes where known.
  std::string dump() const;
  /// Deep copy (initializer tensors cloned).
  Graph clone() const;
};

/// ONNX TensorProto.DataType code <-> ATen dtype. Errors name the unsupported code.
at::ScalarType dtype_from_onnx(int64_t code);
int64_t dtype_to_onnx(at::ScalarType t);
/// Human-readable dtype name ("float32", "int64", ...).
std::string dtype_name(at::ScalarType t);
/// Joins a shape as "1x3x224x224" with "N" for dynamic dims.
std::string shape_to_string(const std::vector<int64_t>& shape);

}  // namespace slim
