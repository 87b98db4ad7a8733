#include "slim/prune/prune_channels.h"

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <regex>

#include "slim/exec/infer_shapes.h"

namespace slim {

int64_t pruned_count(int64_t channels, double ratio, int64_t align) {
  SLIM_CHECK(ratio >= 0 && ratio < 1, "pruning ratio must be in [0, 1), got ", ratio);
  SLIM_CHECK(align >= 1, "--align must be >= 1, got ", align);
  // Python's round(): half to even, on the double product (PaddleSlim: round(C * ratio)).
  const int saved = std::fegetround();
  std::fesetround(FE_TONEAREST);
  int64_t removed = static_cast<int64_t>(std::nearbyint(static_cast<double>(channels) * ratio));
  std::fesetround(saved);
  removed = std::clamp<int64_t>(removed, 0, channels - 1);
  if (align == 1 || removed == 0) return removed;
  if (channels < align) return 0;
  const int64_t kept = channels - removed;
  int64_t aligned = (kept + align / 2) / align * align;  // nearest multiple, ties up
  aligned = std::clamp<int64_t>(aligned, align, channels / align * align);
  return channels - aligned;
}

namespace {

/// Removed-channel masks of every group (empty vector = group untouched).
using Masks = std::vector<std::vector<bool>>;

/// Positions along an axis that stay, given the removed channels of every group.
std::vector<int64_t> kept_positions(const ChannelMap& m, const Masks& masks, bool* any_removed) {
  std::vector<int64_t> keep;
  int64_t pos = 0;
  *any_removed = false;
  for (const auto& s : m.segments) {
    for (int64_t c = 0; c < s.length; ++c) {
      const bool removed = s.group >= 0 && !masks[s.group].empty() && masks[s.group][s.offset + c];
      for (int64_t k = 0; k < m.block; ++k, ++pos)
        if (removed)
          *any_removed = true;
        else
          keep.push_back(pos);
    }
  }
  return keep;
}

int64_t kept_channels(const ChannelMap& m, const Masks& masks) {
  bool any = false;
  return static_cast<int64_t>(kept_positions(m, masks, &any).size()) / m.block;
}

/// Replaces constant input `idx` of `n` by a new initializer (the old one may be shared).
void set_const_input(Graph& g, Node& n, size_t idx, const at::Tensor& value) {
  const std::string name = g.unique_name(n.name + "_pruned_" + std::to_string(idx));
  g.initializers[name] = value;
  if (n.inputs.size() <= idx) n.inputs.resize(idx + 1);
  n.inputs[idx] = name;
}

void apply_attr(Graph& g, const ChannelAttr& a, const Masks& masks) {
  Node* n = g.find_node(a.node);
  SLIM_ASSERT(n, "pruned node '", a.node, "' vanished");
  switch (a.kind) {
    case ChannelAttr::Kind::kConvGroup:
      n->attrs["group"] = kept_channels(a.maps[0], masks);
      break;
    case ChannelAttr::Kind::kSplitSizes: {
      std::vector<int64_t> sizes;
      for (const auto& m : a.maps) sizes.push_back(kept_channels(m, masks));
      n->attrs.erase("num_outputs");
      if (g.opset >= 13)
        set_const_input(g, *n, 1, at::tensor(sizes, at::kLong));
      else
        n->attrs["split"] = sizes;
      break;
    }
    case ChannelAttr::Kind::kReshapeFlatten:
      set_const_input(g, *n, 1, at::tensor(std::vector<int64_t>{0, -1}, at::kLong));
      break;
  }
}

}  // namespace

PruneReport prune_channels(Graph& g, const PruneOptions& opts) {
  SLIM_CHECK(opts.align >= 1, "--align must be >= 1, got ", opts.align);
  const ChannelAnalysis an = analyze_channel_groups(g);

  // Validate everything before the graph changes.
  std::map<int, std::pair<std::string, double>> chosen;  // group -> (master, ratio)
  for (const auto& [param, ratio] : opts.ratios) {
    SLIM_CHECK(ratio >= 0 && ratio < 1, "pruning ratio of '", param, "' must be in [0, 1), got ",
               ratio);
    const ChannelGroup& grp = an.group_of(g, param);
    auto it = chosen.find(grp.id);
    if (it != chosen.end()) {
      SLIM_CHECK(it->second.second == ratio, "params '", it->second.first, "' and '", param,
                 "' are coupled (their channels are cut together) but have different ratios ",
                 it->second.second, " and ", ratio, "; give a ratio for only one of them");
      continue;
    }
    chosen[grp.id] = {param, ratio};
  }

  PruneReport report;
  for (const auto& grp : an.groups)
    if (!grp.prunable) report.skipped.push_back({grp.sources, grp.channels, grp.reason});

  Masks masks(an.groups.size());
  for (const auto& [id, choice] : chosen) {
    const ChannelGroup& grp = an.groups[id];
    const int64_t count = pruned_count(grp.channels, choice.second, opts.align);
    if (count == 0) continue;
    PrunedGroup pg;
    pg.master = choice.first;
    pg.params = grp.sources;
    pg.channels = grp.channels;
    pg.kept = grp.channels - count;
    if (opts.only_graph) {
      for (int64_t c = pg.kept; c < grp.channels; ++c) pg.removed.push_back(c);
    } else {
      auto scores = filter_importance(g, choice.first, opts.criterion);
      SLIM_ASSERT(static_cast<int64_t>(scores.size()) == grp.channels, "importance of '",
                  choice.first, "' has ", scores.size(), " scores for ", grp.channels, " channels");
      pg.removed = lowest_indices(scores, count);
    }
    masks[id].assign(grp.channels, false);
    for (auto c : pg.removed) masks[id][c] = true;
    if (grp.channels % 8 == 0 && pg.kept % 8 != 0) report.unaligned.push_back(pg.master);
    report.pruned.push_back(std::move(pg));
  }
  if (report.pruned.empty()) return report;

  for (const auto& c : an.cuts) {
    bool any = false;
    auto keep = kept_positions(c.map, masks, &any);
    if (!any) continue;
    at::Tensor& t = g.initializers.at(c.initializer);
    SLIM_ASSERT(t.size(c.axis) == c.map.positions(), "initializer '", c.initializer, "' axis ",
                c.axis, " has ", t.size(c.axis), " positions, the channel map ", c.map.positions());
    if (opts.lazy) {
      at::Tensor mask = at::ones({t.size(c.axis)}, at::kBool);
      mask.index_fill_(0, at::tensor(keep, at::kLong), false);
      std::vector<int64_t> view(t.dim(), 1);
      view[c.axis] = t.size(c.axis);
      t = t.masked_fill(mask.view(view), 0);
    } else {
      t = t.index_select(c.axis, at::tensor(keep, at::kLong)).contiguous();
    }
  }
  if (!opts.lazy) {
    for (const auto& a : an.attrs) apply_attr(g, a, masks);
    g.value_info.clear();
    infer_shapes(g);
  }
  g.verify();
  return report;
}

std::vector<std::string> prunable_params(const Graph& g) {
  std::vector<std::string> r;
  for (const auto& grp : analyze_channel_groups(g).groups)
    if (grp.prunable) r.push_back(grp.sources.front());
  return r;
}

std::vector<std::string> prunable_params_matching(const Graph& g, const std::string& regex) {
  std::regex re;
  try {
    re = std::regex(regex, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    SLIM_FAIL("--params-regex '", regex, "' is not a valid regular expression: ", e.what());
  }
  std::vector<std::string> out;
  for (const auto& p : prunable_params(g))
    if (std::regex_match(p, re)) out.push_back(p);
  SLIM_CHECK(!out.empty(), "--params-regex '", regex,
             "' matches no prunable conv weight (whole-name match; `slim info --graph` lists "
             "the weights)");
  return out;
}

}  // namespace slim
