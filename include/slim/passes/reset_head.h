#pragma once
#include <string>

#include "slim/ir/graph.h"

namespace slim {

/// reset_head: gives a classifier a new final layer for `classes` classes (fine-tuning on data
/// with another class count, `slim train --reset-head`). The graph's single output must come from
/// a Gemm whose weight and bias are initializers, directly or through one Softmax or LogSoftmax.
/// Its weight gets `classes` rows (columns with transB = 0) drawn as PyTorch's nn.Linear does,
/// U(-1/sqrt(in), 1/sqrt(in)) from `seed`, and its bias too (zeros when the Gemm has none); the
/// output's shape follows. Returns the Gemm's name (its label if unnamed). Errors name the node
/// and what is missing.
std::string reset_head(Graph& g, int64_t classes, uint64_t seed = 0);

}  // namespace slim
