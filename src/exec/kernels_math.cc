// Element-wise arithmetic and reductions.
#include "slim/exec/kernel.h"

namespace slim {

namespace {

void check_same_dtype(const KernelContext& c) {
  SLIM_CHECK(c.x(0).scalar_type() == c.x(1).scalar_type(), c.node.label(),
             ": inputs must have the same type, got ", dtype_name(c.x(0).scalar_type()), " and ",
             dtype_name(c.x(1).scalar_type()));
}

/// a + b written into a's memory when the executor handed a over and no broadcast grows it.
bool add_in_place(KernelContext& c) {
  if (!c.can_overwrite(0) || c.training) return false;
  const at::Tensor &a = c.in[0], &b = c.x(1);
  if (at::infer_size(a.sizes(), b.sizes()) != a.sizes().vec()) return false;
  c.out[0] = c.in[0].add_(b);
  return true;
}

void add(KernelContext& c) {
  check_same_dtype(c);
  if (!add_in_place(c)) c.out[0] = at::add(c.x(0), c.x(1));
}

void sub(KernelContext& c) {
  check_same_dtype(c);
  c.out[0] = at::sub(c.x(0), c.x(1));
}

void mul(KernelContext& c) {
  check_same_dtype(c);
  c.out[0] = at::mul(c.x(0), c.x(1));
}

void div(KernelContext& c) {
  check_same_dtype(c);
  const at::Tensor &a = c.x(0), &b = c.x(1);
  // ONNX integer Div truncates like C; ATen's default would promote to float.
  if (at::isIntegralType(a.scalar_type(), /*includeBool=*/false))
    c.out[0] = at::div(a, b, "trunc");
  else
    c.out[0] = at::div(a, b);
}

void reduce_mean(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  bool keep = c.node.i("keepdims", 1) != 0;
  std::vector<int64_t> axes = c.node.ints("axes");
  if (c.has(1)) axes = to_int_vector(c.in[1]);  // opset 18 form, accepted when present
  if (axes.empty()) {
    for (int64_t d = 0; d < x.dim(); ++d) axes.push_back(d);
  } else {
    for (auto& a : axes) a = normalize_axis(c.node, a, x.dim());
  }
  if (at::isIntegralType(x.scalar_type(), /*includeBool=*/false)) {
    // ATen's mean is floating-only; ONNX integer ReduceMean truncates the quotient, like C.
    c.out[0] = x.to(at::kDouble).mean(axes, keep).to(x.scalar_type());
    return;
  }
  c.out[0] = x.mean(axes, keep);
}

}  // namespace

const std::vector<KernelEntry>& math_kernels() {
  static const std::vector<KernelEntry> k = {
      {"Add", add}, {"Sub", sub}, {"Mul", mul}, {"Div", div}, {"ReduceMean", reduce_mean},
  };
  return k;
}

}  // namespace slim
