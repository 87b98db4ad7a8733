#include "slim/prune/flops_target.h"

#include <algorithm>
#include <cmath>

#include "slim/analysis/flops.h"

namespace slim {

namespace {

int64_t flops_with(const Graph& g, const std::map<std::string, double>& ratios, int64_t align) {
  if (ratios.empty()) return count_flops(g).total;
  Graph p = g.clone();
  PruneOptions o;
  o.ratios = ratios;
  o.align = align;
  o.only_graph = true;  // counts decide FLOPs, not which filters go
  prune_channels(p, o);
  return count_flops(p).total;
}

void check_reduction(double reduction) {
  SLIM_CHECK(reduction > 0 && reduction < 1, "FLOPs reduction target must be in (0, 1), got ",
             reduction);
}

/// Smallest t in [lo, hi] with reaches(t) (monotone), to a tolerance of (hi - lo) / 2^iters.
template <typename Fn>
double bisect(double lo, double hi, int iters, Fn reaches) {
  for (int i = 0; i < iters; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (reaches(mid))
      hi = mid;
    else
      lo = mid;
  }
  return hi;
}

}  // namespace

FlopsTargetResult flops_target_by_sensitivity(const Graph& g, const Sensitivities& s,
                                              double reduction, const PruneOptions& base) {
  check_reduction(reduction);
  SLIM_CHECK(!s.empty(), "the sensitivity table is empty");
  FlopsTargetResult r;
  r.flops_before = count_flops(g).total;
  const double goal = static_cast<double>(r.flops_before) * (1 - reduction);
  auto flops_at = [&](double loss) { return flops_with(g, ratios_by_loss(s, loss), base.align); };
  const int64_t best = flops_at(1.0);
  SLIM_CHECK(static_cast<double>(best) <= goal, "the sensitivities reach at most ",
             100.0 * (1 - static_cast<double>(best) / static_cast<double>(r.flops_before)),
             "% FLOPs reduction (every param at its largest analysed ratio), short of ",
             100.0 * reduction, "%: analyse larger ratios or more params");
  // Bisect from below every loss in the table (nothing pruned there; losses can be negative)
  // up to 1, keeping the bracket: below `lo` the target is missed, at `hi` it is reached.
  double lo = -1e-3, hi = 1;
  for (const auto& [param, points] : s)
    for (const auto& [ratio, loss] : points) lo = std::min(lo, loss - 1e-3);
  for (int i = 0; i < 40; ++i) {
    const double mid = 0.5 * (lo + hi);
    (flops_at(mid) <= goal ? hi : lo) = mid;
  }
  r.threshold = hi;
  // Params whose losses tie (several at 0, say) reach the threshold together, and the FLOPs
  // jump past the target at it: a model at chance has every loss 0 and would lose 90% of every
  // conv for any target. Each param moves from its ratio below the bracket toward its ratio at
  // the threshold by the same fraction, the smallest that reaches the target.
  const auto below = ratios_by_loss(s, lo), at = ratios_by_loss(s, hi);
  auto blend = [&](double f) {
    std::map<std::string, double> out;
    for (const auto& [param, ratio] : at) {
      auto it = below.find(param);
      const double from = it == below.end() ? 0.0 : it->second;
      const double v = from + f * (ratio - from);
      if (v > 0) out[param] = v;
    }
    return out;
  };
  auto reaches = [&](const std::map<std::string, double>& ratios) {
    return static_cast<double>(flops_with(g, ratios, base.align)) <= goal;
  };
  double f_lo = 0, f = 1;
  for (int i = 0; i < 30; ++i) {
    const double mid = 0.5 * (f_lo + f);
    (reaches(blend(mid)) ? f : f_lo) = mid;
  }
  // Channel rounding (align) moves the params that share a channel count in one step: take the
  // step one param at a time, stopping at the first that reaches the target.
  std::map<std::string, double> ratios = blend(f_lo);
  for (const auto& [param, ratio] : blend(f)) {
    if (reaches(ratios)) break;
    ratios[param] = ratio;
  }
  r.ratios = reaches(ratios) ? ratios : blend(f);
  r.flops_after = flops_with(g, r.ratios, base.align);
  return r;
}

FlopsTargetResult flops_target_global(const Graph& g, double reduction, const PruneOptions& base,
                                      const std::vector<std::string>& params, double max_ratio) {
  check_reduction(reduction);
  SLIM_CHECK(max_ratio > 0 && max_ratio < 1, "max ratio must be in (0, 1), got ", max_ratio);
  const ChannelAnalysis an = analyze_channel_groups(g);
  std::vector<std::string> masters = params;
  if (masters.empty())
    for (const auto& grp : an.groups)
      if (grp.prunable) masters.push_back(grp.sources.front());
  SLIM_CHECK(!masters.empty(), "graph '", g.name, "' has no prunable conv groups");
  // Normalised scores, sorted ascending per group.
  std::vector<std::vector<double>> scores;
  for (const auto& m : masters) {
    an.group_of(g, m);  // clear error for a bad name
    auto s = filter_importance(g, m, base.criterion);
    const double mx = *std::max_element(s.begin(), s.end());
    for (auto& v : s) v = mx > 0 ? v / mx : 0;
    std::sort(s.begin(), s.end());
    scores.push_back(std::move(s));
  }
  auto ratios_at = [&](double t) {
    std::map<std::string, double> r;
    for (size_t i = 0; i < masters.size(); ++i) {
      const auto& s = scores[i];
      const int64_t c = static_cast<int64_t>(s.size());
      int64_t below = std::lower_bound(s.begin(), s.end(), t) - s.begin();
      below = std::min<int64_t>(below, static_cast<int64_t>(std::floor(max_ratio * c)));
      if (below > 0) r[masters[i]] = static_cast<double>(below) / static_cast<double>(c);
    }
    return r;
  };
  FlopsTargetResult r;
  r.flops_before = count_flops(g).total;
  const double goal = static_cast<double>(r.flops_before) * (1 - reduction);
  const int64_t best = flops_with(g, ratios_at(2.0), base.align);
  SLIM_CHECK(static_cast<double>(best) <= goal, "pruning ", 100 * max_ratio,
             "% of every prunable group reaches only ",
             100.0 * (1 - static_cast<double>(best) / static_cast<double>(r.flops_before)),
             "% FLOPs reduction, short of ", 100.0 * reduction, "%");
  r.threshold = bisect(0, 1.0000001, 30,
                       [&](double t) { return flops_with(g, ratios_at(t), base.align) <= goal; });
  r.ratios = ratios_at(r.threshold);
  r.flops_after = flops_with(g, r.ratios, base.align);
  return r;
}

}  // namespace slim
