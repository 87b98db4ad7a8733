#pragma once
/// Post-training static quantization in two steps with a readable scale table between them
/// (ncnn2table -> ncnn2int8; PaddleSlim's PostTrainingQuantization), or both in one call.
#include <memory>

#include "slim/data/dataset.h"
#include "slim/ir/graph.h"
#include "slim/quant/calibrate.h"
#include "slim/quant/quantize_qdq.h"

namespace slim {

struct PtqOptions {
  QuantOptions quant;
  CalibOptions calib;
  /// Fold BatchNormalization into the convs first (deployment runtimes quantize the folded conv).
  bool fold_bn = true;
  /// PaddleSlim's bias_correction_w on each weight before it is quantized.
  bool bias_correction = false;
};

/// Step 1: checks `g` is a float model, folds batch norm and constants (in place) and calibrates
/// on `data`.
ScaleTable ptq_calibrate(Graph& g, const std::shared_ptr<Dataset>& data, const PtqOptions& o);

/// Step 2: folds batch norm and constants (in place) and rewrites `g` into QDQ form with `table`'s thresholds.
QdqReport ptq_apply(Graph& g, const ScaleTable& table, const PtqOptions& o);

}  // namespace slim
