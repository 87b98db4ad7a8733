#pragma once
/// Runs a validated pipeline config (slim/pipeline/config.h) into a run folder:
///
///   RUN_DIR/00-model/model.onnx         the input model (a zoo model is built here)
///   RUN_DIR/NN-NAME/model.onnx          each stage's model (stages that write one)
///   RUN_DIR/NN-NAME/metrics.json        the stage's results and the measurements of its model
///   RUN_DIR/NN-NAME/sens.json           sensitivity stages' table (resumable)
///   RUN_DIR/summary.json                every stage's metrics, in order
///   RUN_DIR/report.html                 tables and charts of the run (slim/pipeline/report.h)
///
/// Each stage's fingerprint covers the settings, its own keys and everything it reads (the
/// stages before it, a teacher or a sensitivity file by content). A stage whose metrics.json
/// carries the same fingerprint is not run again; a changed stage or input reruns it and every
/// stage after it; a killed run resumes at the stage that did not finish. Every file is written
/// atomically.
#include <nlohmann/json.hpp>
///
/// The `auto` stage compresses its input model to a budget (max-latency-ms at the measure's
/// latency batch, max-size in bytes of the file, max-loss: top-1 lost relative to the input's,
/// default 0.01) by a ladder of strategies, cheapest first, each a small pipeline of its own in
/// RUN_DIR/NN-auto/RUNG:
///   1. ptq-ALGO: int8 post-training quantization with each calibration method (`algos`,
///      default hist, mse, kl, avg, abs_max; `calib-batches` 32);
///   2. qat-distill: int8 quant-aware training distilled from the input model (`qat-epochs` 1,
///      `qat-lr` 0.001);
///   3. prune-R for each FLOPs reduction R of `flops-targets` (0.3, 0.5, 0.7): prune by
///      sensitivity (every prunable conv, `sens-ratios`, on `sens-max-samples` 2000 test images,
///      computed once), kept channels aligned to `align` (8), fine-tune distilled from the input
///      (`finetune-epochs` 1, `lr` 0.01), then QAT distilled from the input.
/// After each rung (PTQ with all its calibration methods is one rung) the ladder stops if a
/// candidate meets the budget (`exhaustive: true` tries every rung). A rung that fails is a
/// candidate that missed, with the error. The stage's model is the most accurate candidate that
/// meets it; candidates.json keeps every candidate's top-1, loss, latency, size and why it missed.
/// When none meets the budget the stage fails naming the most accurate candidates and how each
/// missed.
#include <string>
#include <vector>

#include "slim/pipeline/config.h"

namespace slim {

struct PipelineRunOptions {
  bool dry_run = false;  ///< print the plan (run or reuse, per stage) and change nothing
  bool progress = true;  ///< stage headers and the methods' progress on stderr
};

struct PipelineStageResult {
  std::string name, kind;
  std::string dir;      ///< RUN_DIR/NN-NAME
  std::string model;    ///< the model after this stage (the one before it for eval, bench, ...)
  bool reused = false;  ///< finished by an earlier run with the same fingerprint
  std::string fingerprint;
  nlohmann::json metrics;  ///< as in metrics.json (empty in a dry run for stages to run)
};

struct PipelineResult {
  std::vector<PipelineStageResult> stages;  ///< the input model first
  std::string final_model;
};

PipelineResult pipeline_run(const PipelineConfig& config, const std::string& run_dir,
                            const PipelineRunOptions& options = {});

}  // namespace slim
