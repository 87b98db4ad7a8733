#pragma once
/// prune_channels: removes filters from conv groups (analyze_channel_groups) and everything
/// coupled to them, so the pruned graph has smaller shapes and cut weights.
#include <map>
#include <string>
#include <vector>

#include "slim/ir/graph.h"
#include "slim/prune/channel_groups.h"
#include "slim/prune/importance.h"

namespace slim {

struct PruneOptions {
  /// Conv weight name -> fraction of its group's filters to remove, in [0, 1).
  std::map<std::string, double> ratios;
  Criterion criterion = Criterion::kL1Norm;
  /// Kept channels of every pruned group are rounded to a multiple of `align` (1 = PaddleSlim's
  /// exact counts). Vector kernels want multiples of 8.
  int64_t align = 1;
  /// Zero the pruned filters (and everything coupled) instead of removing them; shapes stay.
  bool lazy = false;
  /// Shapes only: skip importance and keep the first channels of each group (FLOPs and size
  /// estimates; the weights are not meaningful).
  bool only_graph = false;
};

struct PrunedGroup {
  std::string master;               ///< the param whose importance decided
  std::vector<std::string> params;  ///< all coupled conv weights
  int64_t channels = 0;
  int64_t kept = 0;
  std::vector<int64_t> removed;  ///< group channel indices removed, ascending
};

struct SkippedGroup {
  std::vector<std::string> params;
  int64_t channels = 0;
  std::string reason;
};

struct PruneReport {
  std::vector<PrunedGroup> pruned;
  std::vector<SkippedGroup> skipped;  ///< every unprunable group of the graph, with its reason
  /// Pruned groups whose channel count was a multiple of 8 and is not anymore.
  std::vector<std::string> unaligned;
};

/// Number of filters removed from `channels` at `ratio`: round-half-to-even(channels * ratio)
/// (PaddleSlim), then adjusted so the kept count is a multiple of `align` (nearest, at least
/// `align`; groups smaller than `align` are not pruned).
int64_t pruned_count(int64_t channels, double ratio, int64_t align = 1);

/// Prunes `g` in place. Precondition: shapes inferred. Postcondition: shapes re-inferred,
/// graph verified. Errors (before anything changes) name the param and the value: ratio outside
/// [0, 1), unknown param, not a conv weight, unprunable group, two params of one group.
PruneReport prune_channels(Graph& g, const PruneOptions& opts);

/// Master params of all prunable groups, in graph order (first source of each group).
std::vector<std::string> prunable_params(const Graph& g);
/// The prunable_params() whose whole name matches `regex` (ECMAScript). Errors name the regex
/// when it is invalid or matches nothing.
std::vector<std::string> prunable_params_matching(const Graph& g, const std::string& regex);

}  // namespace slim
