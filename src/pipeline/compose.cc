#include "slim/pipeline/compose.h"

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

}  // namespace slim
