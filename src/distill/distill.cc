#include "slim/distill/distill.h"

#include <cmath>

#include "slim/exec/infer_shapes.h"
#include "slim/onnx/onnx_io.h"

namespace slim {

namespace {

/// Shape of a value of the merged graph (after infer_shapes); errors name it.
std::vector<int64_t> value_shape(const Graph& g, const std::string& v) {
  auto s = g.shape_of(v);
  SLIM_CHECK(s.has_value(), "no shape known for value '", v, "'");
  return *s;
}

bool is_teacher_value(const Graph& g, const std::string& v) {
  int p = g.producer(v);
  return p >= 0 && g.frozen_nodes.count(g.nodes[p].name) > 0;
}

void check_value(const Graph& g, const std::string& v, bool teacher, const std::string& prefix,
                 const DistillLoss& l) {
  bool exists = g.producer(v) >= 0 || g.is_input(v);
  SLIM_CHECK(exists, "loss ", l.describe(), ": unknown value '", v, "'",
             teacher ? " in the teacher (teacher values carry the prefix '" + prefix + "')"
                     : " in the student",
             "; list the values with `slim info MODEL.onnx --values`");
  SLIM_CHECK(is_teacher_value(g, v) == teacher, "loss ", l.describe(), ": '", v, "' is ",
             teacher ? "not a teacher value (teacher values carry the prefix '" + prefix + "')"
                     : "a teacher value, expected a student value");
}

bool only_channels_differ(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  if (a.size() != b.size() || a.size() < 2) return false;
  for (size_t d = 0; d < a.size(); ++d)
    if (d != 1 && a[d] != b[d]) return false;
  return a[1] != b[1];
}

}  // namespace

void check_distill_losses(const Graph& merged, const std::vector<DistillLoss>& losses,
                          const std::string& prefix, bool adapters) {
  SLIM_CHECK(!losses.empty(), "distillation needs at least one loss (--loss)");
  for (const auto& l : losses) {
    for (const auto& v : l.teacher) check_value(merged, v, true, prefix, l);
    for (const auto& v : l.student) check_value(merged, v, false, prefix, l);
    auto ts = value_shape(merged, l.teacher[0]), ss = value_shape(merged, l.student[0]);
    switch (l.kind) {
      case DistillLossKind::kL2:
        if (ts == ss) break;
        SLIM_CHECK(adapters && only_channels_differ(ts, ss), "loss ", l.describe(),
                   ": teacher map '", l.teacher[0], "' has shape ", shape_to_string(ts),
                   " but student map '", l.student[0], "' has shape ", shape_to_string(ss),
                   only_channels_differ(ts, ss)
                       ? "; only the channels differ: --adapter learns a 1x1 conv between them"
                       : "");
        break;
      case DistillLossKind::kSoftLabel:
        SLIM_CHECK(ts == ss && ts.size() >= 2, "loss ", l.describe(), ": teacher logits '",
                   l.teacher[0], "' ", shape_to_string(ts), " and student logits '", l.student[0],
                   "' ", shape_to_string(ss), " must have the same [N, classes]");
        break;
      case DistillLossKind::kFsp: {
        auto t2 = value_shape(merged, l.teacher[1]), s2 = value_shape(merged, l.student[1]);
        auto spatial_ok = [](const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
          return a.size() == 4 && b.size() == 4 && a[2] == b[2] && a[3] == b[3];
        };
        SLIM_CHECK(spatial_ok(ts, t2), "loss ", l.describe(), ": teacher maps ",
                   shape_to_string(ts), " and ", shape_to_string(t2),
                   " must be [N, C, H, W] with the same H and W");
        SLIM_CHECK(spatial_ok(ss, s2), "loss ", l.describe(), ": student maps ",
                   shape_to_string(ss), " and ", shape_to_string(s2),
                   " must be [N, C, H, W] with the same H and W");
        SLIM_CHECK(ts[1] == ss[1] && t2[1] == s2[1], "loss ", l.describe(),
                   ": FSP matrices differ: teacher ", ts[1], "x", t2[1], ", student ", ss[1], "x",
                   s2[1], " (paired maps need the same channel counts)");
        break;
      }
    }
  }
}

DistillReport distill(const Graph& teacher, Graph& student, const std::shared_ptr<Dataset>& data,
                      const DistillOptions& opts) {
  // One graph holds both networks, so they need one opset: the older one is converted up (a zoo
  // model is opset 13, PyTorch 1.13 exports 14). The student, when converted, is saved so.
  Graph converted;
  const Graph* t = &teacher;
  if (teacher.opset < student.opset) {
    converted = onnx_convert_opset(teacher, student.opset, "the teacher");
    t = &converted;
  } else if (student.opset < teacher.opset) {
    student = onnx_convert_opset(student, teacher.opset, "the student");
  }
  Graph merged = merge(*t, student, opts.merge);
  infer_shapes(merged);
  check_distill_losses(merged, opts.losses, opts.merge.prefix, opts.adapters);
  SLIM_CHECK(opts.task_weight >= 0, "task weight must be >= 0, got ", opts.task_weight);

  DistillReport report;
  at::manual_seed(opts.train.seed);
  // Adapters: 1x1 convs on student maps whose channels differ from the teacher's.
  std::vector<at::Tensor> adapter(opts.losses.size());
  LossTerms terms;
  terms.task_weight = opts.task_weight;
  for (size_t i = 0; i < opts.losses.size(); ++i) {
    const auto& l = opts.losses[i];
    report.losses.push_back(l.describe());
    for (const auto& v : l.teacher) terms.fetch.push_back(v);
    for (const auto& v : l.student) terms.fetch.push_back(v);
    if (l.kind != DistillLossKind::kL2) continue;
    auto ts = value_shape(merged, l.teacher[0]), ss = value_shape(merged, l.student[0]);
    if (ts == ss) continue;
    // Kaiming-uniform, as a fresh 1x1 conv in PyTorch: bound = 1 / sqrt(fan_in).
    double bound = 1.0 / std::sqrt(static_cast<double>(ss[1]));
    std::vector<int64_t> wshape{ts[1], ss[1]};
    for (size_t d = 2; d < ts.size(); ++d) wshape.push_back(1);
    adapter[i] = (at::rand(wshape) * 2 - 1).mul_(bound).requires_grad_(true);
    terms.params.push_back(adapter[i]);
    report.adapters.push_back(l.student[0] + ": " + std::to_string(ss[1]) + " -> " +
                              std::to_string(ts[1]) + " channels");
  }
  const std::vector<DistillLoss> losses = opts.losses;
  terms.extra = [losses, adapter](const std::map<std::string, at::Tensor>& v) {
    at::Tensor total;
    for (size_t i = 0; i < losses.size(); ++i) {
      const auto& l = losses[i];
      at::Tensor term;
      switch (l.kind) {
        case DistillLossKind::kL2: {
          at::Tensor s = v.at(l.student[0]);
          if (adapter[i].defined())
            s = s.dim() == 4
                    ? at::conv2d(s, adapter[i])
                    : at::matmul(s.movedim(1, -1), adapter[i].flatten(1).t()).movedim(-1, 1);
          term = l2_loss(v.at(l.teacher[0]), s);
          break;
        }
        case DistillLossKind::kSoftLabel:
          term = soft_label_loss(v.at(l.teacher[0]), v.at(l.student[0]), l.t_teacher, l.t_student,
                                 l.scale_t2);
          break;
        case DistillLossKind::kFsp:
          term = fsp_loss(v.at(l.teacher[0]), v.at(l.teacher[1]), v.at(l.student[0]),
                          v.at(l.student[1]));
          break;
      }
      term = term * l.weight;
      total = total.defined() ? total + term : term;
    }
    return total;
  };
  report.epochs = train(merged, data, opts.train, &terms);
  return report;
}

DistillLoss distill_default_loss(const Graph& teacher, const Graph& student,
                                 const std::string& prefix, bool scale_t2) {
  SLIM_CHECK(teacher.outputs.size() == 1 && student.outputs.size() == 1,
             "distill: give --loss (the teacher has ", teacher.outputs.size(),
             " outputs and the student ", student.outputs.size(),
             "; the default soft_label pairs a single output of each)");
  DistillLoss l;
  l.kind = DistillLossKind::kSoftLabel;
  l.teacher = {prefix + teacher.outputs[0].name};
  l.student = {student.outputs[0].name};
  l.scale_t2 = scale_t2;
  return l;
}

}  // namespace slim
