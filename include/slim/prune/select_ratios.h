#pragma once
/// How much of each conv to prune, from what the user said: explicit ratios, a sensitivity file
/// with an accepted loss, a FLOPs reduction (by sensitivity or by a global importance ranking),
/// or one uniform ratio. `slim prune` and the pipeline's prune stage both choose through here.
#include <map>
#include <string>

#include "slim/ir/graph.h"
#include "slim/prune/prune_channels.h"

namespace slim {

/// Exactly one way to choose is set: `ratios`, `sens` with `loss`, `flops_target` (with or
/// without `sens`), or `uniform`. Negative numbers mean unset.
struct PruneSelection {
  std::map<std::string, double> ratios;  ///< param -> ratio
  std::string sens;                      ///< sensitivity file (slim sensitivity)
  double loss = -1;                      ///< with sens: accepted relative top-1 loss
  double flops_target = -1;              ///< FLOPs reduction to reach (with sens: bisect the loss)
  double uniform = -1;       ///< one ratio for every prunable group (or those of params_regex)
  std::string params_regex;  ///< uniform or global flops_target: only matching conv weights
  double max_ratio = 0.9;    ///< global flops_target: cap per group
};

struct SelectedRatios {
  std::map<std::string, double> ratios;  ///< ready for PruneOptions::ratios
  double threshold = -1;  ///< flops_target: the loss or normalised importance reached
};

/// The ratios `sel` asks for on `g` (`base` gives the criterion and alignment the FLOPs target
/// is reached with). Errors say which choice is missing or conflicting, in the flags' names.
SelectedRatios select_prune_ratios(const Graph& g, const PruneSelection& sel,
                                   const PruneOptions& base);

}  // namespace slim
