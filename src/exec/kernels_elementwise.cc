// Element-wise kernels beyond the arithmetic in kernels_math.cc: unary math and activations,
// Pow, PRelu, Mod, comparisons, logic, Where, and the variadic Min/Max/Sum/Mean. All follow
// ONNX's multidirectional (numpy) broadcasting, which ATen's binary ops implement.
#include <cmath>

#include "slim/exec/kernel.h"

namespace slim {

namespace {

void require_float(const KernelContext& c, const at::Tensor& x) {
  SLIM_CHECK(at::isFloatingType(x.scalar_type()), c.node.label(),
             ": input must be a float tensor, got ", dtype_name(x.scalar_type()));
}

// --- unary ---------------------------------------------------------------------------------

void abs_(KernelContext& c) { c.out[0] = at::abs(c.x(0)); }
void neg(KernelContext& c) { c.out[0] = at::neg(c.x(0)); }
void sign(KernelContext& c) { c.out[0] = at::sign(c.x(0)); }

/// Float-only unary ops that map one to one onto an ATen function.
#define SLIM_FLOAT_UNARY(name, expr) \
  void name(KernelContext& c) {      \
    const at::Tensor& x = c.x(0);    \
    require_float(c, x);             \
    c.out[0] = (expr);               \
  }
SLIM_FLOAT_UNARY(sqrt_, at::sqrt(x))
SLIM_FLOAT_UNARY(reciprocal, at::reciprocal(x))
SLIM_FLOAT_UNARY(exp_, at::exp(x))
SLIM_FLOAT_UNARY(log_, at::log(x))
SLIM_FLOAT_UNARY(erf_, at::erf(x))
SLIM_FLOAT_UNARY(floor_, at::floor(x))
SLIM_FLOAT_UNARY(ceil_, at::ceil(x))
SLIM_FLOAT_UNARY(round_, at::round(x))  // half to even, as ONNX specifies
SLIM_FLOAT_UNARY(sin_, at::sin(x))
SLIM_FLOAT_UNARY(cos_, at::cos(x))
SLIM_FLOAT_UNARY(softsign, x / (at::abs(x) + 1))
#undef SLIM_FLOAT_UNARY

void softplus(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  require_float(c, x);
  // log(1 + exp(x)), stable for large x (ATen's softplus switches to x above its threshold).
  c.out[0] = at::softplus(x, 1, 20);
}

void elu(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  require_float(c, x);
  c.out[0] = at::elu(x, c.node.f("alpha", 1.f));
}

void selu(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  require_float(c, x);
  // ONNX's defaults are the float32 values of SELU's constants.
  const double alpha = c.node.f("alpha", 1.67326319217681884765625f);
  const double gamma = c.node.f("gamma", 1.05070102214813232421875f);
  c.out[0] = at::elu(x, alpha, gamma);
}

void celu(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  require_float(c, x);
  const double alpha = c.node.f("alpha", 1.f);
  SLIM_CHECK(alpha != 0, c.node.label(), ": alpha must not be 0");
  c.out[0] = at::celu(x, alpha);
}

void thresholded_relu(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  require_float(c, x);
  const double alpha = c.node.f("alpha", 1.f);
  c.out[0] = at::where(x > alpha, x, at::zeros_like(x));
}

void shrink(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  const double lambd = c.node.f("lambd", 0.5f), bias = c.node.f("bias", 0.f);
  // Computed in double so integer inputs follow the same formula, then cast back.
  at::Tensor xd = x.to(at::kDouble);
  at::Tensor y =
      at::where(xd < -lambd, xd + bias, at::where(xd > lambd, xd - bias, at::zeros_like(xd)));
  c.out[0] = y.to(x.scalar_type());
}

// --- binary --------------------------------------------------------------------------------

void pow_(KernelContext& c) {
  const at::Tensor &x = c.x(0), &y = c.x(1);
  // Opset 12+: the exponent may have another type; the result has the base's type.
  if (at::isFloatingType(x.scalar_type())) {
    c.out[0] = at::pow(x, y.to(x.scalar_type()));
  } else {
    c.out[0] = at::pow(x.to(at::kDouble), y.to(at::kDouble)).to(x.scalar_type());
  }
}

void prelu(KernelContext& c) {
  const at::Tensor &x = c.x(0), &slope = c.x(1);
  check_same_dtype(c, x, slope);
  // The slope broadcasts to x one way, by numpy's rules (PyTorch exports [C, 1, 1] for NCHW).
  SLIM_CHECK(at::infer_size(x.sizes(), slope.sizes()) == x.sizes().vec(), c.node.label(),
             ": slope of shape ", shape_to_string(slope.sizes().vec()),
             " does not broadcast to the input's ", shape_to_string(x.sizes().vec()));
  c.out[0] = at::where(x < 0, x * slope, x);
}

void mod(KernelContext& c) {
  const at::Tensor &a = c.x(0), &b = c.x(1);
  check_same_dtype(c, a, b);
  const bool fmod = c.node.i("fmod", 0) != 0;
  if (at::isFloatingType(a.scalar_type())) {
    SLIM_CHECK(fmod, c.node.label(), ": float inputs need fmod=1 (ONNX), got fmod=0");
    c.out[0] = at::fmod(a, b);
  } else {
    // fmod=0: the result takes the divisor's sign (Python's %); fmod=1: the dividend's (C's %).
    c.out[0] = fmod ? at::fmod(a, b) : at::remainder(a, b);
  }
}

// --- comparison and logic ------------------------------------------------------------------

#define SLIM_COMPARE(name, fn)                 \
  void name(KernelContext& c) {                \
    const at::Tensor &a = c.x(0), &b = c.x(1); \
    check_same_dtype(c, a, b);                 \
    c.out[0] = at::fn(a, b);                   \
  }
SLIM_COMPARE(equal, eq)
SLIM_COMPARE(less, lt)
SLIM_COMPARE(less_or_equal, le)
SLIM_COMPARE(greater, gt)
SLIM_COMPARE(greater_or_equal, ge)
#undef SLIM_COMPARE

void require_bool(const KernelContext& c, const at::Tensor& x) {
  SLIM_CHECK(x.scalar_type() == at::kBool, c.node.label(), ": inputs must be bool, got ",
             dtype_name(x.scalar_type()));
}

#define SLIM_LOGIC(name, fn)                   \
  void name(KernelContext& c) {                \
    const at::Tensor &a = c.x(0), &b = c.x(1); \
    require_bool(c, a);                        \
    require_bool(c, b);                        \
    c.out[0] = at::fn(a, b);                   \
  }
SLIM_LOGIC(and_, logical_and)
SLIM_LOGIC(or_, logical_or)
SLIM_LOGIC(xor_, logical_xor)
#undef SLIM_LOGIC

void not_(KernelContext& c) {
  require_bool(c, c.x(0));
  c.out[0] = at::logical_not(c.x(0));
}

void where_(KernelContext& c) {
  const at::Tensor &cond = c.x(0), &a = c.x(1), &b = c.x(2);
  require_bool(c, cond);
  check_same_dtype(c, a, b);
  c.out[0] = at::where(cond, a, b);
}

// --- variadic ------------------------------------------------------------------------------

/// Folds the inputs pairwise with `fn`; all inputs must have one type.
template <typename Fn>
at::Tensor fold_inputs(const KernelContext& c, Fn fn) {
  SLIM_CHECK(!c.in.empty(), c.node.label(), ": needs at least one input");
  at::Tensor acc = c.x(0);
  for (size_t k = 1; k < c.in.size(); ++k) {
    check_same_dtype(c, acc, c.x(k));
    acc = fn(acc, c.x(k));
  }
  return acc;
}

void min_(KernelContext& c) {
  c.out[0] =
      fold_inputs(c, [](const at::Tensor& a, const at::Tensor& b) { return at::minimum(a, b); });
}
void max_(KernelContext& c) {
  c.out[0] =
      fold_inputs(c, [](const at::Tensor& a, const at::Tensor& b) { return at::maximum(a, b); });
}
void sum_(KernelContext& c) {
  c.out[0] = fold_inputs(c, [](const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); });
}
void mean_(KernelContext& c) {
  at::Tensor s =
      fold_inputs(c, [](const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); });
  require_float(c, s);
  c.out[0] = s / static_cast<double>(c.in.size());
}

}  // namespace

const std::vector<KernelEntry>& elementwise_kernels() {
  static const std::vector<KernelEntry> k = {
      {"Abs", abs_},
      {"Neg", neg},
      {"Sign", sign},
      {"Sqrt", sqrt_},
      {"Reciprocal", reciprocal},
      {"Exp", exp_},
      {"Log", log_},
      {"Erf", erf_},
      {"Floor", floor_},
      {"Ceil", ceil_},
      {"Round", round_},
      {"Sin", sin_},
      {"Cos", cos_},
      {"Softsign", softsign},
      {"Softplus", softplus},
      {"Elu", elu},
      {"Selu", selu},
      {"Celu", celu},
      {"ThresholdedRelu", thresholded_relu},
      {"Shrink", shrink},
      {"Pow", pow_},
      {"PRelu", prelu},
      {"Mod", mod},
      {"Equal", equal},
      {"Less", less},
      {"LessOrEqual", less_or_equal},
      {"Greater", greater},
      {"GreaterOrEqual", greater_or_equal},
      {"And", and_},
      {"Or", or_},
      {"Xor", xor_},
      {"Not", not_},
      {"Where", where_},
      {"Min", min_},
      {"Max", max_},
      {"Sum", sum_},
      {"Mean", mean_},
  };
  return k;
}

}  // namespace slim
