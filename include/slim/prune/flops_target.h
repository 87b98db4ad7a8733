#pragma once
/// Choosing per-layer pruning ratios that reach a FLOPs reduction.
#include <map>
#include <string>
#include <vector>

#include "slim/ir/graph.h"
#include "slim/prune/prune_channels.h"
#include "slim/prune/sensitivity.h"

namespace slim {

struct FlopsTargetResult {
  std::map<std::string, double> ratios;  ///< param -> ratio, ready for PruneOptions::ratios
  double threshold = 0;  ///< the loss (sensitivity mode) or normalised importance (global mode)
  int64_t flops_before = 0;
  int64_t flops_after = 0;  ///< FLOPs of the graph pruned with `ratios`
};

/// PaddleSlim's get_ratios_by_sensitivity: bisects the accepted loss for the smallest loss
/// (`threshold`) whose ratios_by_loss() prune at least `reduction` of the FLOPs (e.g. 0.5 =
/// half). Unlike PaddleSlim it does not overshoot where losses tie: when several params reach
/// the threshold at once, each moves from its ratio just below the threshold toward its ratio at
/// it by one common fraction, the smallest that reaches the target, so the FLOPs removed are the
/// target up to one channel's rounding. `base` supplies align (its ratios are ignored). Errors
/// say how far the sensitivities reach when even their largest ratios fall short.
/// Precondition: shapes inferred.
FlopsTargetResult flops_target_by_sensitivity(const Graph& g, const Sensitivities& s,
                                              double reduction, const PruneOptions& base);

/// Global ranking: every filter of the selected groups (all prunable groups when `params` is
/// empty) gets its importance divided by the largest of its group, and the filters below one
/// threshold across all layers are pruned (at most `max_ratio` of any group); the threshold is
/// bisected for the smallest that removes at least `reduction` of the FLOPs.
FlopsTargetResult flops_target_global(const Graph& g, double reduction, const PruneOptions& base,
                                      const std::vector<std::string>& params = {},
                                      double max_ratio = 0.9);

}  // namespace slim
