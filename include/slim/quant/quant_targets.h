#pragma once
/// Which nodes a quantizer touches, shared by post-training quantization and quant-aware training.
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "slim/ir/graph.h"
#include "slim/quant/quant_options.h"

namespace slim {

/// A Conv, Gemm or MatMul whose weight is a float initializer and whose first input is a
/// run-time activation.
struct QuantTarget {
  std::string node;        ///< node name
  std::string op_type;
  std::string activation;  ///< the quantized input (input 0)
  std::string weight;      ///< the weight initializer
  int64_t weight_axis = 0;  ///< output-channel axis of the weight (per-channel scales)
  std::string bias;         ///< 1-D bias initializer over the output channels, or ""
  /// With QuantOptions::quantize_outputs: the value that ends the op's int8 step (its output,
  /// or that of a Relu/Clip/LeakyRelu that alone reads it), "" when it is a graph output or
  /// nothing reads it.
  std::string output;
};

/// Targets of `o.quantize_op_types` in graph order, without nodes matching
/// `o.not_quant_pattern`, Gemm with transA, and nodes whose weight is computed at run time.
/// `skipped`, if given, receives "node: reason" for each op of a quantized type left in float.
std::vector<QuantTarget> find_quant_targets(const Graph& g, const QuantOptions& o,
                                            std::vector<std::string>* skipped = nullptr);

/// The values a quantizer rounds, each once, in graph order of first use: every target's
/// activation, then (quantize_outputs) its output. All readers of such a value read it
/// quantized, so a runtime keeps it in int8 between steps.
std::vector<std::string> quantized_values(const std::vector<QuantTarget>& targets);

/// Rewrites `nodes` so that each value v of `values` passes through the nodes `make(v)` returns
/// (placed right after v's producer, or first when no node of `nodes` computes v): every other
/// reader of v reads the last one's output instead. Graph outputs keep their names.
void insert_after_values(std::vector<Node>& nodes,
                         const std::vector<std::string>& values,
                         const std::function<std::vector<Node>(const std::string&)>& make);

/// Throws if `g` is already quantized (has QuantizeLinear, DequantizeLinear or FakeQuant nodes),
/// naming the first such node. `what` names the command ("post-training quantization").
void check_not_quantized(const Graph& g, const std::string& what);

/// True when value `v` is >= 0 by construction: the output of Relu, Clip with a lower bound >= 0,
/// Sigmoid or Softmax, possibly through pooling, reshaping, Concat of such values, and the like.
/// Such activations are quantized as uint8 (zero point 0, 255 levels on [0, threshold]).
bool is_nonnegative(const Graph& g, const std::string& v);

/// Names for the values and nodes a quantization pass adds: unique among the graph's names and
/// the names made so far (the pass builds its new node list beside the graph's).
class NameMaker {
 public:
  explicit NameMaker(const Graph& g) : g_(g) {}
  std::string operator()(const std::string& base);

 private:
  const Graph& g_;
  std::set<std::string> made_;
};

/// Ends a rewrite: installs `nodes` as the graph's nodes, drops the initializers no node reads
/// any more (the float tensors that were replaced) from the graph and its trainable set, and
/// verifies the result.
void install_rewrite(Graph& g, std::vector<Node> nodes);

}  // namespace slim
