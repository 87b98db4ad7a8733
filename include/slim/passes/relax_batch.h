#pragma once
#include <string>

#include "slim/ir/graph.h"

namespace slim {

struct RelaxBatchReport {
  bool applicable = false;  ///< every graph input had its leading dim fixed at 1
  bool relaxed = false;     ///< the graph now takes any batch (checked)
  int reshapes = 0;         ///< Reshape targets whose leading 1 became 0 ("copy the batch")
  std::string reason;       ///< why not relaxed, when applicable but not relaxed
};

/// relax_batch: a model exported with its batch fixed at 1 (PyTorch's plain torch.onnx.export)
/// gets a symbolic batch. Every graph input's and batch-1 output's leading dim becomes "N", and
/// Reshape targets (initializers or Constant nodes) that bake the batch in as a leading 1 get 0,
/// which copies the input's leading dim (PyTorch folds `x.view(x.size(0), ...)` to [1, ...]).
/// The result is kept only if shape inference succeeds and, on random inputs, the relaxed graph
/// at batch 2 gives each sample's outputs of two batch-1 runs of the original graph (within
/// 1e-4 of the largest output magnitude, for the kernels' different blocking); otherwise `g` is
/// unchanged and `reason` says why. Preconditions: inputs with known shapes; inference semantics.
RelaxBatchReport relax_batch(Graph& g, uint64_t seed = 0);

}  // namespace slim
