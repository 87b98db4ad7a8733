#pragma once
/// Filter importance criteria (PaddleSlim's `l1_norm`, `l2_norm`, `geometry_median`, `bn_scale`,
/// plus `l0_norm`). Lower scores are pruned first.
#include <string>
#include <vector>

#include "slim/ir/graph.h"

namespace slim {

enum class Criterion { kL1Norm, kL2Norm, kL0Norm, kFpgm, kBnScale };

/// "l1_norm", "l2_norm", "l0_norm", "fpgm" (alias "geometry_median"), "bn_scale". Errors list
/// the valid names.
Criterion criterion_from_string(const std::string& name);
std::string criterion_name(Criterion c);

/// One score per filter (axis 0) of conv weight `param`:
///   l1_norm: sum |w|; l2_norm: sqrt(sum w^2); l0_norm: count of non-zeros;
///   fpgm: sum of L2 distances to every other filter (filters near the geometric median are
///   redundant and score low); bn_scale: |gamma| of the BatchNormalization reading the conv.
/// Errors name the param (not an initializer, no BatchNormalization after it for bn_scale).
std::vector<double> filter_importance(const Graph& g, const std::string& param, Criterion c);

/// Indices of the `count` lowest scores, ascending by index; ties go to the lower index.
std::vector<int64_t> lowest_indices(const std::vector<double>& scores, int64_t count);

}  // namespace slim
