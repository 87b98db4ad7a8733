#include "slim/quant/post_training.h"

#include "slim/passes/fold_batch_norm.h"
#include "slim/passes/fold_constants.h"
#include "slim/quant/quant_targets.h"

namespace slim {

ScaleTable ptq_calibrate(Graph& g, const std::shared_ptr<Dataset>& data, const PtqOptions& o) {
  check_qdq_options(o.quant);
  check_not_quantized(g, "post-training quantization");
  if (o.fold_bn) fold_batch_norm(g);
  fold_constants(g);  // e.g. Clip bounds in Constant nodes, so the Clip joins the int8 step
  return calibrate(g, data, o.quant, o.calib);
}

QdqReport ptq_apply(Graph& g, const ScaleTable& table, const PtqOptions& o) {
  check_not_quantized(g, "post-training quantization");
  if (o.fold_bn) fold_batch_norm(g);
  fold_constants(g);
  return quantize_qdq(g, table, o.quant, o.bias_correction);
}

}  // namespace slim
