#include "slim/distill/losses.h"

#include <cmath>
#include <sstream>

#include "slim/ir/parse.h"

namespace slim {

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  if (!s.empty() && s.back() == sep) out.emplace_back();
  return out;
}

double number(const std::string& text, const std::string& spec, const char* what) {
  auto v = parse_double(text);
  SLIM_CHECK(v.has_value(), "--loss '", spec, "': ", what, " '", text, "' is not a number");
  return *v;
}

}  // namespace

at::Tensor l2_loss(const at::Tensor& teacher, const at::Tensor& student) {
  SLIM_CHECK(teacher.sizes() == student.sizes(), "l2 loss: teacher map ",
             shape_to_string(teacher.sizes().vec()), " and student map ",
             shape_to_string(student.sizes().vec()), " differ in shape");
  return (teacher - student).pow(2).mean();
}

at::Tensor soft_label_loss(const at::Tensor& teacher, const at::Tensor& student,
                           double t_teacher, double t_student, bool scale_t2) {
  SLIM_CHECK(teacher.sizes() == student.sizes(), "soft_label loss: teacher logits ",
             shape_to_string(teacher.sizes().vec()), " and student logits ",
             shape_to_string(student.sizes().vec()), " differ in shape");
  SLIM_CHECK(teacher.dim() >= 2, "soft_label loss needs logits [N, C], got ",
             shape_to_string(teacher.sizes().vec()));
  SLIM_CHECK(t_teacher > 0 && t_student > 0, "soft_label temperatures must be > 0, got ",
             t_teacher, " and ", t_student);
  at::Tensor target = at::softmax(teacher / t_teacher, 1);
  at::Tensor logp = at::log_softmax(student / t_student, 1);
  at::Tensor loss = -(target * logp).sum(1).mean();
  return scale_t2 ? loss * (t_student * t_student) : loss;
}

at::Tensor fsp_matrix(const at::Tensor& a, const at::Tensor& b) {
  SLIM_CHECK(a.dim() == 4 && b.dim() == 4 && a.size(0) == b.size(0) && a.size(2) == b.size(2) &&
                 a.size(3) == b.size(3),
             "fsp: the two maps must be [N, C, H, W] with the same N, H and W, got ",
             shape_to_string(a.sizes().vec()), " and ", shape_to_string(b.sizes().vec()));
  const int64_t hw = a.size(2) * a.size(3);
  return at::bmm(a.flatten(2), b.flatten(2).transpose(1, 2)) / static_cast<double>(hw);
}

at::Tensor fsp_loss(const at::Tensor& t1, const at::Tensor& t2, const at::Tensor& s1,
                    const at::Tensor& s2) {
  at::Tensor ft = fsp_matrix(t1, t2), fs = fsp_matrix(s1, s2);
  SLIM_CHECK(ft.sizes() == fs.sizes(), "fsp: teacher matrix ", shape_to_string(ft.sizes().vec()),
             " and student matrix ", shape_to_string(fs.sizes().vec()),
             " differ (the paired maps need the same channel counts)");
  return (ft - fs).pow(2).mean();
}

const char* loss_kind_name(DistillLossKind k) {
  switch (k) {
    case DistillLossKind::kL2:
      return "l2";
    case DistillLossKind::kSoftLabel:
      return "soft_label";
    case DistillLossKind::kFsp:
      return "fsp";
  }
  return "?";
}

DistillLoss DistillLoss::parse(const std::string& spec) {
  auto colon = spec.find(':');
  SLIM_CHECK(colon != std::string::npos, "--loss '", spec,
             "': expected KIND:VALUES[:PARAMS] with KIND l2, soft_label or fsp");
  std::string kind = spec.substr(0, colon);
  auto parts = split(spec.substr(colon + 1), ':');
  DistillLoss l;
  size_t want = 2;
  if (kind == "l2") {
    l.kind = DistillLossKind::kL2;
  } else if (kind == "soft_label") {
    l.kind = DistillLossKind::kSoftLabel;
  } else if (kind == "fsp") {
    l.kind = DistillLossKind::kFsp;
    want = 4;
  } else {
    SLIM_FAIL("--loss '", spec, "': unknown kind '", kind, "' (expected l2, soft_label or fsp)");
  }
  SLIM_CHECK(!parts.empty() && parts.size() <= 2, "--loss '", spec, "': expected ", kind,
             ":VALUES[:PARAMS]");
  auto names = split(parts[0], ',');
  SLIM_CHECK(names.size() == want, "--loss '", spec, "': ", kind, " takes ", want,
             " value names (", want == 2 ? "teacher,student" : "teacher1,teacher2,student1,student2",
             "), got ", names.size());
  for (const auto& n : names)
    SLIM_CHECK(!n.empty(), "--loss '", spec, "': empty value name");
  l.teacher.assign(names.begin(), names.begin() + static_cast<long>(want / 2));
  l.student.assign(names.begin() + static_cast<long>(want / 2), names.end());
  if (parts.size() == 2) {
    auto p = split(parts[1], ',');
    if (l.kind == DistillLossKind::kSoftLabel) {
      SLIM_CHECK(p.size() >= 2 && p.size() <= 3, "--loss '", spec,
                 "': soft_label parameters are T_teacher,T_student[,weight]");
      l.t_teacher = number(p[0], spec, "teacher temperature");
      l.t_student = number(p[1], spec, "student temperature");
      SLIM_CHECK(l.t_teacher > 0 && l.t_student > 0, "--loss '", spec,
                 "': temperatures must be > 0");
      if (p.size() == 3) l.weight = number(p[2], spec, "weight");
    } else {
      SLIM_CHECK(p.size() == 1, "--loss '", spec, "': ", kind, " takes one parameter, the weight");
      l.weight = number(p[0], spec, "weight");
    }
  }
  SLIM_CHECK(l.weight >= 0, "--loss '", spec, "': weight must be >= 0, got ", l.weight);
  return l;
}

std::string DistillLoss::describe() const {
  std::ostringstream s;
  s << loss_kind_name(kind) << "(";
  for (size_t i = 0; i < teacher.size(); ++i) s << (i ? ", " : "") << teacher[i];
  s << " | ";
  for (size_t i = 0; i < student.size(); ++i) s << (i ? ", " : "") << student[i];
  s << ")";
  if (kind == DistillLossKind::kSoftLabel) s << " T=" << t_teacher << "/" << t_student;
  s << " x" << weight;
  return s.str();
}

}  // namespace slim
