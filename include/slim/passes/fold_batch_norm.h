#pragma once
#include "slim/ir/graph.h"

namespace slim {

/// fold_batch_norm: a Conv whose output is read only by one inference-form BatchNormalization
/// (constant scale, offset, mean, variance) becomes one Conv with W' = W * s and
/// b' = (b - mean) * s + offset, s = scale / sqrt(var + eps) per output channel, as deployment
/// runtimes do. The BN's output name is kept.
/// Preserves: numerics within float rounding (1e-5 relative). Not fired when the conv output has
/// other readers or is a graph output, the weight or bias is shared, or BN has training outputs.
/// Preconditions: inference only (the folded graph has no BN statistics to train).
/// The folded weights and biases are new tensors (nothing is changed in place), so a shallow
/// copy of a graph (Graph's copy constructor) may be folded without touching the original.
/// Returns the number of BatchNormalization nodes folded. `values_too` false: the structure only,
/// the folded weights left uninitialized (for plans, shapes and latency-table signatures, which
/// do not read them; a network of a search space's cover is folded in a fraction of the time).
int fold_batch_norm(Graph& g, bool values_too = true);

}  // namespace slim
