#pragma once
/// Quant-aware training: fake-quantize, fine-tune with the trainer, export as ONNX QDQ
/// (PaddleSlim's quant_aware -> train -> convert).
#include <memory>
#include <vector>

#include "slim/data/dataset.h"
#include "slim/ir/graph.h"
#include "slim/quant/quantize_qdq.h"
#include "slim/train/trainer.h"

namespace slim {

struct QatOptions {
  QuantOptions quant;
  TrainOptions train;
  /// true: fold BatchNormalization into the convs before training, so the weights trained under
  /// fake quantization are the ones deployed. false: train with BN in place and fold it at
  /// export (the exported weights are then re-quantized after folding).
  bool fold_bn_before = true;
};

struct QatReport {
  std::vector<EpochStats> epochs;
  ScaleTable table;  ///< the learned activation thresholds
  QdqReport qdq;
};

/// Trains `g` under fake quantization and rewrites it in place into QDQ form (int8 weights,
/// learned activation scales). Errors as quantize_qdq and train.
QatReport quant_aware_train(Graph& g, const std::shared_ptr<Dataset>& data, const QatOptions& o);

}  // namespace slim
