#pragma once
/// Static shape inference: every Value gets a dtype and shape in Graph::value_info for a given
/// input shape; dims that follow the (symbolic) batch stay kDynamicDim.
#include <string>
#include <vector>

#include "slim/ir/graph.h"

namespace slim {

/// Parses "1,28,28" (per-sample C,H,W; batch stays symbolic) or "4,1,28,28" (full shape).
/// Several inputs are separated by ';'. Errors name the text.
std::vector<std::vector<int64_t>> parse_input_shapes(const std::string& text);

/// Sets the declared shape of the graph inputs from user-given shapes. A shape one dim shorter
/// than the input's rank (or for an input of unknown rank) is per-sample: the batch dim is
/// prepended as dynamic. Given dims replace declared ones (analysing a model at another
/// resolution is allowed); the rank must match. Errors name the input and both shapes.
void set_input_shapes(Graph& g, const std::vector<std::vector<int64_t>>& shapes);

/// Infers shapes of all values by running the graph on zero tensors (dynamic dims are tried at
/// two sizes; dims that change with them stay dynamic). Fills value_info and output shapes.
/// Every input needs a shape with known non-batch dims; errors say which is missing.
void infer_shapes(Graph& g);

/// The concrete input tensors used to probe the graph, with dynamic dims set to `dynamic_as`.
std::vector<at::Tensor> example_inputs(const Graph& g, int64_t dynamic_as, bool random = false);

}  // namespace slim
