#include "slim/quant/fake_quant.h"

#include "slim/ir/error.h"
#include "slim/quant/quant_options.h"

namespace slim {

namespace {
/// `s` shaped to broadcast against x along `axis` (or as a scalar for per-tensor).
at::Tensor along(const at::Tensor& x, const at::Tensor& s, int64_t axis) {
  if (axis < 0) return s.reshape({});
  SLIM_ASSERT(s.numel() == x.size(axis), "scale count ", s.numel(), " vs dim ", x.size(axis));
  std::vector<int64_t> shape(x.dim(), 1);
  shape[axis] = x.size(axis);
  return s.reshape(shape);
}
}  // namespace

at::Tensor abs_max(const at::Tensor& w, int64_t axis) {
  if (axis < 0) return w.detach().abs().max();
  at::Tensor moved = w.detach().abs().transpose(0, axis).reshape({w.size(axis), -1});
  return std::get<0>(moved.max(1));
}

int64_t quant_levels(int bits, bool is_unsigned) {
  return is_unsigned ? (int64_t{1} << bits) - 1 : quant_bound(bits);
}

at::Tensor quantize_symmetric(const at::Tensor& x, const at::Tensor& s, int bits, int64_t axis,
                              bool is_unsigned) {
  const double b = static_cast<double>(quant_levels(bits, is_unsigned));
  at::Tensor sb = along(x, s.to(at::kFloat), axis);
  // The step as ONNX stores it (float32 s / b); a zero threshold (an all-zero channel) quantizes
  // to 0 instead of dividing by zero.
  at::Tensor step = at::where(sb > 0, sb / b, at::ones_like(sb));
  at::Tensor q = at::clamp(at::round(x.to(at::kFloat) / step), is_unsigned ? 0.0 : -b, b);
  return at::where(sb > 0, q, at::zeros_like(q));
}

at::Tensor quant_dequant(const at::Tensor& x, const at::Tensor& s, int bits, int64_t axis,
                         bool is_unsigned) {
  at::NoGradGuard no_grad;
  const double b = static_cast<double>(quant_levels(bits, is_unsigned));
  at::Tensor q = quantize_symmetric(x.detach(), s.detach(), bits, axis, is_unsigned);
  return (q * (along(x, s.detach().to(at::kFloat), axis) / b)).to(x.scalar_type());
}

at::Tensor fake_quant_ste(const at::Tensor& x, const at::Tensor& s, int bits, int64_t axis,
                          bool is_unsigned) {
  at::Tensor qdq = quant_dequant(x, s, bits, axis, is_unsigned);
  if (!x.requires_grad()) return qdq;
  // qdq + (x - x) keeps the forward value exactly qdq and gives x a gradient of one.
  return qdq + (x - x.detach());
}

}  // namespace slim

#include "slim/exec/kernel.h"

namespace slim {

void fake_quant_kernel(KernelContext& c) {
  const Node& n = c.node;
  const at::Tensor& x = c.x(0);
  SLIM_CHECK(x.scalar_type() == at::kFloat, n.label(), ": input must be float32, got ",
             dtype_name(x.scalar_type()));
  const int bits = static_cast<int>(n.i("bits", 8));
  SLIM_CHECK(bits >= 2 && bits <= 16, n.label(), ": bits must be in 2..16, got ", bits);
  const std::string target = n.s("target", "activation");
  const std::string algo = n.s("algo", "");
  if (target == "weight") {
    int64_t axis = algo == "abs_max" ? -1 : n.i("axis", 0);
    if (axis >= 0) axis = normalize_axis(n, axis, x.dim());
    c.out[0] = fake_quant_ste(x, abs_max(x, axis), bits, axis);
    return;
  }
  SLIM_CHECK(target == "activation", n.label(), ": target must be weight or activation, got '",
             target, "'");
  at::Tensor st = c.x(1);
  SLIM_CHECK(st.scalar_type() == at::kFloat && st.is_contiguous() && st.numel() >= 1, n.label(),
             ": state must be a contiguous float tensor");
  float* p = st.data_ptr<float>();
  if (c.training) {
    const double m = x.detach().abs().max().item<double>();
    if (algo == "abs_max") {
      p[0] = static_cast<float>(m);
    } else if (algo == "range_abs_max") {
      const int64_t window = st.numel() - 2;
      SLIM_CHECK(window >= 1, n.label(), ": range_abs_max state needs a window");
      const int64_t count = static_cast<int64_t>(p[1]);
      p[2 + count % window] = static_cast<float>(m);
      p[1] = static_cast<float>(count + 1);
      const int64_t used = std::min(count + 1, window);
      float mx = 0;
      for (int64_t i = 0; i < used; ++i) mx = std::max(mx, p[2 + i]);
      p[0] = mx;
    } else {  // moving_average_abs_max
      SLIM_CHECK(st.numel() >= 3, n.label(), ": moving_average_abs_max state needs 3 values");
      const double r = n.f("moving_rate", 0.9f);
      p[1] = static_cast<float>(r * p[1] + 1);
      p[2] = static_cast<float>(r * p[2] + m);
      p[0] = p[2] / p[1];
    }
  }
  double scale = p[0];
  if (!(scale > 0)) scale = x.detach().abs().max().item<double>();  // never trained yet
  c.out[0] = fake_quant_ste(x, at::scalar_tensor(scale, at::kFloat), bits, -1,
                            n.i("unsigned", 0) != 0);
}

}  // namespace slim
