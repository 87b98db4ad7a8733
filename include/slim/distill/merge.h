#pragma once
/// Teacher/student merge for distillation (PaddleSlim's `merge`): one Graph that computes both
/// networks from the student's inputs, with the teacher frozen.
#include <map>
#include <string>

#include "slim/ir/graph.h"

namespace slim {

struct MergeOptions {
  /// Teacher input name -> student input name. Empty: the single teacher input is fed by the
  /// single student input.
  std::map<std::string, std::string> data_name_map;
  std::string prefix = "teacher_";  ///< added to every teacher value and node name
};

/// The student's nodes, inputs, outputs and initializers (tensors shared with `student`, so
/// training the merged graph trains the student), plus the teacher's nodes and initializers with
/// `prefix` added to every name except mapped inputs, which read the student's. The teacher is
/// frozen: its initializers are not trainable and its nodes are in Graph::frozen_nodes
/// (BatchNormalization on running statistics). Errors (naming the value) for an unmapped or
/// unknown input, inputs whose dtype or fixed dims differ, differing opsets, and a prefixed
/// teacher name that already exists in the student.
Graph merge(const Graph& teacher, const Graph& student, const MergeOptions& opts = {});

}  // namespace slim
