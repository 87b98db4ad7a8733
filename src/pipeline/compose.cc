#include "slim/pipeline/compose.h"

#include "slim/onnx/onnx_io.h"
#include "slim/passes/fold_batch_norm.h"
#include "slim/quant/quantize_weights.h"

namespace slim {

QatReport quant_aware_distill(Graph& g, const Graph& teacher, const std::shared_ptr<Dataset>& data,
                              const QatOptions& q, DistillOptions d, bool scale_t2) {
  if (d.losses.empty())
    d.losses.push_back(distill_default_loss(teacher, g, d.merge.prefix, scale_t2));
  qat_prepare(g, q);
  DistillReport dr = distill(teacher, g, data, d);
  QatReport r = qat_finish(g, q);
  r.epochs = dr.epochs;
  return r;
}

int64_t int8_weight_file_size(const Graph& g) {
  Graph q = g.clone();
  fold_batch_norm(q);
  quantize_weights(q, 8);
  return static_cast<int64_t>(onnx_serialize(q).size());
}

}  // namespace slim
