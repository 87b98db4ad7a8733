#pragma once
/// Sensitivity analysis (PaddleSlim's `sensitivity`, `load_sensitivities`, `merge_sensitive`,
/// `get_ratios_by_loss`): how much the metric drops when one conv group is pruned at a ratio.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "slim/data/dataset.h"
#include "slim/ir/graph.h"
#include "slim/prune/importance.h"
#include "slim/train/trainer.h"

namespace slim {

/// param -> ratio -> loss, loss = (baseline - metric) / baseline (negative when pruning helped).
using Sensitivities = std::map<std::string, std::map<double, double>>;

/// The JSON key of a ratio: the shortest decimal that reads back as the same double ("0.1").
std::string sensitivity_ratio_key(double ratio);
/// Reads a sensitivity file ({"param": {"0.1": loss, ...}, ...}). Errors name the file and what
/// is wrong (not JSON, a key that is not a ratio in [0, 1), a loss that is not a number).
Sensitivities sensitivity_load(const std::string& path);
/// Writes atomically (temporary file, then rename).
void sensitivity_save(const Sensitivities& s, const std::string& path);
/// Union of several results; for the same (param, ratio) the later one wins.
Sensitivities sensitivity_merge(const std::vector<Sensitivities>& parts);

struct SensitivityOptions {
  std::vector<std::string> params;  ///< conv weights to analyse
  std::vector<double> ratios = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
  Criterion criterion = Criterion::kL1Norm;
  int64_t align = 1;
  /// Deterministic slice of the work list (params outer, ratios inner, in the order given):
  /// the items whose index % shard_count == shard_index. Give each shard its own `output` and
  /// combine them with sensitivity_merge.
  int shard_index = 0;
  int shard_count = 1;
  /// Rewritten atomically after each param's ratios (and, distributed, as other ranks' cells
  /// arrive); entries already in it are skipped (resume).
  /// A file that exists but does not load is an error and is left untouched. "" = none.
  std::string output;
  EvalOptions eval;      ///< evaluation of baseline and every pruned model (metric: top-1)
  bool progress = true;  ///< one line per evaluation on stderr
  /// The ratios of one conv are evaluated together, batch by batch: the layers before the first
  /// one pruning changes run once per batch and each pruned copy runs only the rest (same
  /// values as separate evaluations). false: one whole evaluation per (param, ratio), as
  /// PaddleSlim does (for comparison).
  bool share_prefix = true;
  /// Distributed (nullptr or one rank: one process): the cells still to compute are dealt out
  /// (cell k to rank k % size); rank 0 computes the baseline, collects every rank's top-1
  /// through the store, writes `output` as cells arrive and prints; every rank returns the
  /// whole result, with the same values as one process.
  dist::Group* group = nullptr;
};

/// Runs the analysis: for each (param, ratio) of this shard not yet in `output`, prunes that one
/// param of a copy of `g` (prune_channels), evaluates, stores the loss against the unpruned
/// copy's top-1. Ratio 0 prunes nothing, so its loss is exactly 0. Returns everything in `output`
/// plus what was computed. Precondition: shapes inferred (infer_shapes or load_for_analysis);
/// `g` is not modified. Errors (before any work and before `output` is touched) name the bad
/// param, ratio, shard or file.
Sensitivities sensitivity(const Graph& g, const std::shared_ptr<Dataset>& data,
                          const SensitivityOptions& opts);

/// PaddleSlim's get_ratios_by_loss: for each param, the points sorted by ratio; the largest
/// point with loss <= `max_loss`; its ratio if it is the last point, else linear interpolation
/// towards the next point. Params with no such point are left out.
std::map<std::string, double> ratios_by_loss(const Sensitivities& s, double max_loss);

}  // namespace slim
