#pragma once
#include "slim/ir/graph.h"

namespace slim {

/// fold_constants: evaluates every node whose inputs are all constants (initializers, Constant
/// nodes, Shape of a value with known shape) and replaces it by an initializer. Shape
/// sub-graphs that carry the symbolic batch (Shape -> Gather/Slice -> Unsqueeze -> Concat ->
/// Reshape) are folded too: the batch entry becomes 0 ("copy this dim") or -1 in the Reshape
/// target, so the folded graph still accepts any batch size.
/// DequantizeLinear is never folded, so a QDQ model keeps its int8 weights for int8 execution.
/// Preserves: numerics exactly; graph output names. Preconditions: shapes inferred
/// (infer_shapes) for Shape nodes to fold; inference semantics (Dropout is not folded).
/// Returns the number of nodes removed.
int fold_constants(Graph& g);

}  // namespace slim
