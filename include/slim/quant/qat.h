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

/// quant_aware_train in two halves, for training `g` some other way in between (e.g. with a
/// teacher: the pipeline's QAT with distillation runs distill() on the prepared graph; the
/// fake-quant states are not trainable and follow the data as in training).
/// qat_prepare: checks, folds BN (o.fold_bn_before) and constants, inserts FakeQuant nodes and
/// marks the float weights trainable. qat_finish: reads the learned scales, removes the FakeQuant
/// nodes and exports QDQ; the report's epochs stay empty.
void qat_prepare(Graph& g, const QatOptions& o);
QatReport qat_finish(Graph& g, const QatOptions& o);

}  // namespace slim
