#pragma once
/// RUN_DIR/report.html: one self-contained page (inline SVG and CSS, no script, nothing fetched)
/// that a pipeline run writes beside summary.json. Sections, each present when the run has
/// its data:
///  - the stages table: top-1 (and its change from the input model), FLOPs, params, file size,
///    latency of float and of int8 models;
///  - top-1 against latency, one point per model (PaddleSlim's first figure);
///  - sensitivity curves, top-1 loss against pruning ratio for each analysed conv (the seed's
///    sensitivity figure), one chart per sensitivity stage;
///  - channels per layer before and after pruning, one chart per prune stage;
///  - a search's trace (validation top-1 of each trained candidate, the best so far);
///  - an auto stage's candidates against its budget (table and chart).
/// Every data point carries a hover title with its values; axes name their units; the colours
/// follow the reader's light or dark scheme.
#include <nlohmann/json.hpp>
#include <string>

namespace slim {

/// The page for a run's summary.json contents (PipelineResult as written by pipeline_run).
std::string pipeline_report_html(const nlohmann::json& summary);

}  // namespace slim
