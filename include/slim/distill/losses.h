#pragma once
/// Distillation losses on tensors (PaddleSlim's l2_loss, soft_label_loss, fsp_loss) and their
/// command-line specs.
#include <string>
#include <vector>

#include "slim/ir/graph.h"

namespace slim {

/// mean((teacher - student)^2) over every element.
at::Tensor l2_loss(const at::Tensor& teacher, const at::Tensor& student);

/// Cross-entropy between softmax(teacher / t_teacher) and log_softmax(student / t_student) over
/// the class axis (1), averaged over the batch; times t_student^2 when `scale_t2` (Hinton's
/// gradient scaling). Logits of shape [N, C] (or [N, C, ...]: the extra dims are averaged too).
at::Tensor soft_label_loss(const at::Tensor& teacher, const at::Tensor& student,
                           double t_teacher = 1.0, double t_student = 1.0, bool scale_t2 = false);

/// FSP matrix of two maps [N, C1, H, W] and [N, C2, H, W]: X Y^T / (H W), shape [N, C1, C2].
/// Errors name both shapes when N, H or W differ.
at::Tensor fsp_matrix(const at::Tensor& a, const at::Tensor& b);

/// mean((fsp(t1, t2) - fsp(s1, s2))^2).
at::Tensor fsp_loss(const at::Tensor& t1, const at::Tensor& t2, const at::Tensor& s1,
                    const at::Tensor& s2);

enum class DistillLossKind { kL2, kSoftLabel, kFsp };

/// One term of the distillation loss, on values of the merged graph.
struct DistillLoss {
  DistillLossKind kind = DistillLossKind::kL2;
  std::vector<std::string> teacher;  ///< l2, soft_label: one value; fsp: two
  std::vector<std::string> student;  ///< same count as `teacher`
  double weight = 1.0;
  double t_teacher = 1.0, t_student = 1.0;  ///< soft_label temperatures
  bool scale_t2 = false;                    ///< soft_label: multiply by t_student^2

  /// "l2:teacher_X,Y[:weight]", "soft_label:teacher_L,L[:T_t,T_s[,weight]]",
  /// "fsp:teacher_A,teacher_B,A,B[:weight]". Errors quote the spec and say what is expected.
  static DistillLoss parse(const std::string& spec);
  std::string describe() const;
};

const char* loss_kind_name(DistillLossKind k);

}  // namespace slim
