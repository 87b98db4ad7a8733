#pragma once
/// Compression pipelines from one YAML file (`slim compress CONFIG -o RUN_DIR`): the model, the
/// data, and an ordered list of stages whose keys are the library's options under the names of
/// the CLI's flags (`lr-schedule: cosine` is `--lr-schedule cosine`). Everything is validated
/// before anything runs; an error names file:line:column, the key, and what is allowed.
///
///   model: {zoo: mobilenet_v1, input: 1,28,28, classes: 10, seed: 0}   # or {file: m.onnx}
///   data: mnist:../data/mnist          # relative paths: from the config file's folder
///   threads: 2
///   measure: {eval: true, latency-batch: 1, latency-runs: 50}
///   stages:
///     - train: {epochs: 1, lr-schedule: cosine, no-shuffle: true, drop-last: true}
///     - sensitivity: {params: [conv2_1_sep_weights], ratios: [0.1, 0.2, 0.3]}
///     - prune: {loss: 0.01}           # sens: a sensitivity stage or file (default: the last)
///     - train: {name: fine-tune, epochs: 1}
///     - quant: {mode: ptq, algo: hist, batches: 32}
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "slim/data/model_data.h"

namespace slim {

/// Where something was written in a config file (1-based line and column).
struct ConfigPos {
  std::string file;
  int line = 0, column = 0;
  std::string str() const;  ///< "file:line:column"
};

struct PipelineModel {
  std::string file;  ///< an ONNX file (absolute once loaded), or
  std::string zoo;   ///< a zoo model's name, built with the options below
  std::vector<int64_t> input{1, 28, 28};
  int64_t classes = 10;
  double scale = 1.0;
  uint64_t seed = 0;
};

/// What is measured after every stage that writes a model (and on the input model).
struct PipelineMeasure {
  bool eval = true;  ///< top-1, top-5 and loss on the test split
  int64_t eval_batch = 256;
  int64_t max_samples = 0;  ///< > 0: evaluate the first N test samples only
  int64_t latency_batch = 1;
  int latency_runs = 50;  ///< 0: no latency
  int latency_warmup = 5;
};

struct PipelineStage {
  /// train, eval, sensitivity, prune, distill, quant, bench, nas (the best candidate is the
  /// stage's model), model (another model, e.g. a teacher, with the keys of the config's model:
  /// the stages after it start from it) or auto (pipeline.h)
  std::string kind;
  std::string name;  ///< `name:`, else the kind (kind-2, kind-3 for repeats)
  // Every stage also takes `from: STAGE`: start from that earlier stage's model (or "model",
  // the input) instead of the last one written; params["from"] holds it.
  /// Validated keys (the CLI's flag names) -> typed values: numbers, booleans, strings, lists,
  /// and prune's `ratios` map. Paths are absolute; distill's `teacher` is a file or a stage.
  nlohmann::json params = nlohmann::json::object();
  ConfigPos pos;                          ///< the stage's entry in the list
  std::map<std::string, ConfigPos> keys;  ///< where each key was written
};

struct PipelineConfig {
  std::string path;  ///< the config file
  PipelineModel model;
  std::string data;  ///< dataset spec (mnist:DIR, fashion:DIR, folder:DIR), DIR absolute
  ImageOptions image;
  int threads = 0;  ///< 0: all cores
  PipelineMeasure measure;
  std::vector<PipelineStage> stages;
  /// Everything above that changes results, as JSON (the input of every stage's fingerprint).
  nlohmann::json settings() const;
};

/// Reads and validates a config file. Errors: "FILE:LINE:COLUMN: MESSAGE", the message naming
/// the key, the value and what is allowed (keys, values or range); a missing file names it.
PipelineConfig pipeline_config_load(const std::string& path);
/// The same for config text; `path` names it in errors and anchors relative paths.
PipelineConfig pipeline_config_parse(const std::string& text, const std::string& path);

/// The checks across the config's parts (an auto stage needs the measure's eval and, with a
/// latency budget, its timing); pipeline_config_parse runs them, and so must whoever adds a
/// stage afterwards (slim compress --auto).
void pipeline_config_check(const PipelineConfig& c);

/// The stage kinds and the keys each accepts (`quant` by mode: "quant ptq", "quant qat",
/// "quant weight"), for documentation and the test that they are the CLI's flags.
std::vector<std::string> pipeline_stage_kinds();
std::vector<std::string> pipeline_stage_keys(const std::string& kind);

}  // namespace slim
