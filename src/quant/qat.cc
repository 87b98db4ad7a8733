#include "slim/quant/qat.h"

#include "slim/passes/fold_batch_norm.h"
#include "slim/passes/fold_constants.h"
#include "slim/quant/insert_fake_quant.h"
#include "slim/quant/quant_targets.h"

namespace slim {

void qat_prepare(Graph& g, const QatOptions& o) {
  check_qdq_options(o.quant);  // before training, not after it
  check_not_quantized(g, "quant-aware training");
  if (o.fold_bn_before) fold_batch_norm(g);
  fold_constants(g);  // e.g. Clip bounds in Constant nodes, so the Clip joins the int8 step
  insert_fake_quant(g, o.quant);
  // Trainable: every float weight (folded biases included) except the fake-quant states.
  g.mark_default_trainable();
  for (const auto& n : g.nodes)
    if (n.op_type == "FakeQuant" && !n.input(1).empty()) g.trainable.erase(n.input(1));
}

QatReport qat_finish(Graph& g, const QatOptions& o) {
  QatReport r;
  r.table = fake_quant_scales(g);
  remove_fake_quant(g);
  if (!o.fold_bn_before) fold_batch_norm(g);
  r.qdq = quantize_qdq(g, r.table, o.quant);
  return r;
}

QatReport quant_aware_train(Graph& g, const std::shared_ptr<Dataset>& data, const QatOptions& o) {
  qat_prepare(g, o);
  std::vector<EpochStats> epochs = train(g, data, o.train);
  QatReport r = qat_finish(g, o);
  r.epochs = std::move(epochs);
  return r;
}

}  // namespace slim
