#include "slim/quant/qat.h"

#include "slim/passes/fold_batch_norm.h"
#include "slim/passes/fold_constants.h"
#include "slim/quant/insert_fake_quant.h"
#include "slim/quant/quant_targets.h"

namespace slim {

QatReport quant_aware_train(Graph& g, const std::shared_ptr<Dataset>& data, const QatOptions& o) {
  check_qdq_options(o.quant);  // before training, not after it
  check_not_quantized(g, "quant-aware training");
  if (o.fold_bn_before) fold_batch_norm(g);
  fold_constants(g);  // e.g. Clip bounds in Constant nodes, so the Clip joins the int8 step
  insert_fake_quant(g, o.quant);
  // Trainable: every float weight (folded biases included) except the fake-quant states.
  g.mark_default_trainable();
  for (const auto& n : g.nodes)
    if (n.op_type == "FakeQuant" && !n.input(1).empty()) g.trainable.erase(n.input(1));
  QatReport r;
  r.epochs = train(g, data, o.train);
  r.table = fake_quant_scales(g);
  remove_fake_quant(g);
  if (!o.fold_bn_before) fold_batch_norm(g);
  r.qdq = quantize_qdq(g, r.table, o.quant);
  return r;
}

}  // namespace slim
