#pragma once
/// Methods combined, for the pipeline and the CLI alike (each method's library stays
/// independent of the others; combinations live here).
#include <memory>

#include "slim/data/dataset.h"
#include "slim/distill/distill.h"
#include "slim/ir/graph.h"
#include "slim/quant/qat.h"

namespace slim {

/// Quant-aware training with distillation (PaddleSlim's distillation + int8 QAT row): `g` is
/// fake-quantized (qat_prepare), trained by distill() against the float `teacher` with
/// `d.losses` (empty: soft_label between the two models' single outputs, times T^2 with
/// `scale_t2`) and `d.train` as the training options, and exported as QDQ (qat_finish).
/// `q.train` is not used.
QatReport quant_aware_distill(Graph& g, const Graph& teacher, const std::shared_ptr<Dataset>& data,
                              const QatOptions& q, DistillOptions d, bool scale_t2 = false);

/// Bytes of the int8 file a model would ship as: BN folded, weights int8 per channel
/// (quantize_weights), serialized. What NAS's --size-format int8 limits.
int64_t int8_weight_file_size(const Graph& g);

}  // namespace slim
