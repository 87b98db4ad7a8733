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
