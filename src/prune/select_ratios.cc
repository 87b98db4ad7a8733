#include "slim/prune/select_ratios.h"

#include "slim/prune/flops_target.h"
#include "slim/prune/sensitivity.h"

namespace slim {

SelectedRatios select_prune_ratios(const Graph& g, const PruneSelection& sel,
                                   const PruneOptions& base) {
  const int ways = !sel.ratios.empty() + (sel.uniform >= 0) + (sel.flops_target >= 0) +
                   (!sel.sens.empty() && sel.flops_target < 0);
  SLIM_CHECK(ways <= 1,
             "prune: give one of ratios, sens with loss, flops-target (with or "
             "without sens) or uniform");
  SLIM_CHECK(sel.loss < 0 || !sel.sens.empty(), "prune: loss needs sens (a sensitivity file)");
  SelectedRatios out;
  if (!sel.ratios.empty()) {
    out.ratios = sel.ratios;
  } else if (sel.uniform >= 0) {
    for (const auto& p : sel.params_regex.empty() ? prunable_params(g)
                                                  : prunable_params_matching(g, sel.params_regex))
      out.ratios[p] = sel.uniform;
  } else if (sel.flops_target >= 0) {
    FlopsTargetResult t =
        sel.sens.empty()
            ? flops_target_global(g, sel.flops_target, base,
                                  sel.params_regex.empty()
                                      ? std::vector<std::string>{}
                                      : prunable_params_matching(g, sel.params_regex),
                                  sel.max_ratio)
            : flops_target_by_sensitivity(g, sensitivity_load(sel.sens), sel.flops_target, base);
    out.ratios = t.ratios;
    out.threshold = t.threshold;
  } else if (!sel.sens.empty()) {
    SLIM_CHECK(sel.loss >= 0, "--sens needs --loss (or --flops-target)");
    out.ratios = ratios_by_loss(sensitivity_load(sel.sens), sel.loss);
    SLIM_CHECK(!out.ratios.empty(), "no param of ", sel.sens, " has a loss <= ", sel.loss,
               " at any analysed ratio: nothing to prune");
  } else {
    SLIM_FAIL("say what to prune: --ratios, --sens with --loss, --flops-target or --uniform");
  }
  return out;
}

}  // namespace slim
