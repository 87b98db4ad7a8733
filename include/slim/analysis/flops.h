#pragma once
/// FLOPs in PaddleSlim's convention (paddleslim/analysis/flops.py), so numbers line up with its
/// published tables: multiply-accumulates per image (batch ignored), bias not counted.
///   Conv:        H_out * W_out * C_out * (k_h * k_w * C_in / group)   (any spatial rank)
///   Gemm/MatMul: K * N per output row of one sample (numel(Y) / batch * K)
/// With `all_ops`: pooling H_out * W_out * C * k_h * k_w (global pooling 0), BatchNormalization
/// and activations one per element; element-wise arithmetic 0.
/// PaddleSlim counts an fc fed by a 4-D map with only X.shape[1] as K, undercounting when
/// H*W > 1; Slim counts K correctly from the Gemm/MatMul input.
#include <string>
#include <vector>

#include "slim/ir/graph.h"

namespace slim {

struct NodeFlops {
  std::string node;
  std::string op_type;
  int64_t flops = 0;
};

struct FlopsReport {
  int64_t total = 0;
  std::vector<NodeFlops> per_node;  ///< only nodes with non-zero FLOPs
};

/// Counts FLOPs. Precondition: shapes inferred (infer_shapes); errors name the node whose
/// shape is missing.
FlopsReport count_flops(const Graph& g, bool all_ops = false);

}  // namespace slim
