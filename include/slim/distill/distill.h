#pragma once
/// Knowledge distillation: train a student with a frozen teacher's maps and logits as extra
/// targets (PaddleSlim's merge + losses + training, in one call).
#include <memory>
#include <string>
#include <vector>

#include "slim/data/dataset.h"
#include "slim/distill/losses.h"
#include "slim/distill/merge.h"
#include "slim/train/trainer.h"

namespace slim {

struct DistillOptions {
  TrainOptions train;
  std::vector<DistillLoss> losses;  ///< at least one
  double task_weight = 1.0;         ///< weight of the student's cross-entropy on the labels
  MergeOptions merge;
  /// l2 between maps whose channel counts differ: learn a 1x1 conv (no bias) that maps the
  /// student map to the teacher's channels. Trained with the student, not part of its export.
  bool adapters = false;
};

struct DistillReport {
  std::vector<EpochStats> epochs;
  std::vector<std::string> losses;    ///< DistillLoss::describe() of each term
  std::vector<std::string> adapters;  ///< "student_value: Cs -> Ct" for each adapter made
};

/// Checks the losses against the merged graph `merged` (values exist, teacher values come from
/// the teacher, shapes pair up) with shapes inferred; throws naming the value and shapes.
/// Exposed for tests; distill() calls it.
void check_distill_losses(const Graph& merged, const std::vector<DistillLoss>& losses,
                          const std::string& prefix, bool adapters);

/// The loss distill() uses when none is given: soft_label between the teacher's and the
/// student's single outputs (teacher value named with `prefix`). Errors when either has several
/// outputs, asking for explicit losses.
DistillLoss distill_default_loss(const Graph& teacher, const Graph& student,
                                 const std::string& prefix, bool scale_t2);

/// Trains `student` in place (its initializers, running statistics included) against `teacher`,
/// which is not changed. Gradients reach only the student's weights (and adapters).
DistillReport distill(const Graph& teacher, Graph& student, const std::shared_ptr<Dataset>& data,
                      const DistillOptions& opts);

}  // namespace slim
