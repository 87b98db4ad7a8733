// Element-wise arithmetic (Add, Sub, Mul, Div) and ONNX's linear (de)quantization.
#include <ATen/Parallel.h>

#include <optional>

#include "int8_elementwise.h"
#include "slim/exec/kernel.h"
#include "slim/quant/fake_quant.h"

namespace slim {

void check_same_dtype(const KernelContext& c, const at::Tensor& a, const at::Tensor& b) {
  SLIM_CHECK(a.scalar_type() == b.scalar_type(), c.node.label(),
             ": inputs must have the same type, got ", dtype_name(a.scalar_type()), " and ",
             dtype_name(b.scalar_type()));
}

namespace {

/// a + b written into a's memory when the executor handed a over and no broadcast grows it.
bool add_in_place(KernelContext& c) {
  if (!c.can_overwrite(0) || c.training) return false;
  const at::Tensor &a = c.in[0], &b = c.x(1);
  if (at::infer_size(a.sizes(), b.sizes()) != a.sizes().vec()) return false;
  c.out[0] = c.in[0].add_(b);
  return true;
}

void add(KernelContext& c) {
  check_same_dtype(c, c.x(0), c.x(1));
  if (!add_in_place(c)) c.out[0] = at::add(c.x(0), c.x(1));
}

void sub(KernelContext& c) {
  check_same_dtype(c, c.x(0), c.x(1));
  c.out[0] = at::sub(c.x(0), c.x(1));
}

void mul(KernelContext& c) {
  check_same_dtype(c, c.x(0), c.x(1));
  c.out[0] = at::mul(c.x(0), c.x(1));
}

void div(KernelContext& c) {
  check_same_dtype(c, c.x(0), c.x(1));
  const at::Tensor &a = c.x(0), &b = c.x(1);
  // ONNX integer Div truncates like C; ATen's default would promote to float.
  if (at::isIntegralType(a.scalar_type(), /*includeBool=*/false))
    c.out[0] = at::div(a, b, "trunc");
  else
    c.out[0] = at::div(a, b);
}

/// A scale or zero point shaped to broadcast against x: a scalar per tensor, or a 1-D tensor
/// along `axis` (ONNX's per-axis form, opset 13).
at::Tensor along_axis(const KernelContext& c, const at::Tensor& p, const at::Tensor& x,
                      const char* what) {
  if (p.dim() == 0 || (p.dim() == 1 && p.numel() == 1)) return p.reshape({});
  SLIM_CHECK(p.dim() == 1, c.node.label(), ": ", what, " must be a scalar or 1-D, got shape ",
             shape_to_string(p.sizes().vec()));
  int64_t axis = normalize_axis(c.node, c.node.i("axis", 1), x.dim());
  SLIM_CHECK(p.size(0) == x.size(axis), c.node.label(), ": ", what, " has ", p.size(0),
             " values but input dim ", axis, " (axis) is ", x.size(axis));
  std::vector<int64_t> shape(x.dim(), 1);
  shape[axis] = p.size(0);
  return p.reshape(shape);
}

/// The memory format in which `t` is dense (its elements in memory order are then the same as
/// those of a tensor of that format), or nullopt.
std::optional<at::MemoryFormat> dense_format(const at::Tensor& t) {
  if (t.is_contiguous()) return at::MemoryFormat::Contiguous;
  if (t.dim() == 4 && t.is_contiguous(at::MemoryFormat::ChannelsLast))
    return at::MemoryFormat::ChannelsLast;
  return std::nullopt;
}

/// Reads a one-element float scale and an absent (0) or one-element zero point of type `levels`
/// (uint8 or int8) straight from memory; false for any other form (per-axis, int32, double).
bool per_tensor_params(const KernelContext& c, at::ScalarType levels, float& scale, int& zp) {
  const at::Tensor& s = c.x(1);
  if (s.scalar_type() != at::kFloat || s.numel() != 1 || s.dim() > 1) return false;
  scale = *s.data_ptr<float>();
  zp = 0;
  if (!c.has(2)) return true;
  const at::Tensor& z = c.in[2];
  if (z.scalar_type() != levels || z.numel() != 1 || z.dim() > 1) return false;
  zp = levels == at::kByte ? *z.data_ptr<uint8_t>() : *z.data_ptr<int8_t>();
  return true;
}

/// QuantizeLinear of a dense float tensor with per-tensor parameters in one pass (the same
/// operations as the ATen composition below); false when it does not apply.
bool quantize_per_tensor(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  const at::ScalarType qtype = c.has(2) ? c.in[2].scalar_type() : at::kByte;
  float scale;
  int zp;
  auto fmt = dense_format(x);
  if (x.scalar_type() != at::kFloat || !fmt || !per_tensor_params(c, qtype, scale, zp))
    return false;
  at::Tensor y = at::empty(x.sizes(), x.options().dtype(qtype).memory_format(*fmt));
  const float* px = x.data_ptr<float>();
  const Levels ly{y.data_ptr(), qtype == at::kByte};
  at::parallel_for(0, x.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
    quantize_levels(px, ly, begin, end - begin, scale, zp);
  });
  c.out[0] = y;
  return true;
}

/// DequantizeLinear of dense 8-bit levels with per-tensor parameters in one pass.
bool dequantize_per_tensor(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  float scale;
  int zp;
  auto fmt = dense_format(x);
  if ((x.scalar_type() != at::kByte && x.scalar_type() != at::kChar) || !fmt ||
      !per_tensor_params(c, x.scalar_type(), scale, zp))
    return false;
  at::Tensor y = at::empty(x.sizes(), x.options().dtype(at::kFloat).memory_format(*fmt));
  const ConstLevels lx{x.data_ptr(), x.scalar_type() == at::kByte};
  float* py = y.data_ptr<float>();
  at::parallel_for(0, x.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
    dequantize_levels(lx, py, begin, end - begin, scale, zp);
  });
  c.out[0] = y;
  return true;
}

/// y = saturate(round_half_to_even(x / scale) + zero_point), in the zero point's type
/// (uint8 when absent).
void quantize_linear(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  SLIM_CHECK(at::isFloatingType(x.scalar_type()), c.node.label(), ": input must be float, got ",
             dtype_name(x.scalar_type()));
  at::ScalarType qtype = c.has(2) ? c.in[2].scalar_type() : at::kByte;
  SLIM_CHECK(qtype == at::kByte || qtype == at::kChar, c.node.label(),
             ": zero point must be uint8 or int8, got ", dtype_name(qtype));
  if (quantize_per_tensor(c)) return;
  at::Tensor scale = along_axis(c, c.x(1).to(at::kFloat), x, "y_scale");
  at::Tensor zp = c.has(2) ? along_axis(c, c.in[2].to(at::kFloat), x, "y_zero_point")
                           : at::zeros({}, x.options().dtype(at::kFloat));
  const double lo = qtype == at::kByte ? 0 : -128, hi = qtype == at::kByte ? 255 : 127;
  // at::round rounds halves to even, as ONNX specifies.
  c.out[0] = at::clamp(at::round(x.to(at::kFloat) / scale) + zp, lo, hi).to(qtype);
}

/// y = (x - zero_point) * scale, float32.
void dequantize_linear(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  at::ScalarType t = x.scalar_type();
  SLIM_CHECK(t == at::kByte || t == at::kChar || t == at::kInt, c.node.label(),
             ": input must be uint8, int8 or int32, got ", dtype_name(t));
  if (c.has(2))
    SLIM_CHECK(c.in[2].scalar_type() == t, c.node.label(), ": zero point type ",
               dtype_name(c.in[2].scalar_type()), " differs from the input's ", dtype_name(t));
  if (dequantize_per_tensor(c)) return;
  at::Tensor scale = along_axis(c, c.x(1).to(at::kFloat), x, "x_scale");
  at::Tensor xf = x.to(at::kFloat);
  if (c.has(2)) xf = xf - along_axis(c, c.in[2].to(at::kFloat), x, "x_zero_point");
  c.out[0] = xf * scale;
}

}  // namespace

const std::vector<KernelEntry>& math_kernels() {
  static const std::vector<KernelEntry> k = {
      {"Add", add},
      {"Sub", sub},
      {"Mul", mul},
      {"Div", div},
      {"QuantizeLinear", quantize_linear},
      {"DequantizeLinear", dequantize_linear},
      {"FakeQuant", fake_quant_kernel},  // quant-aware training (src/quant/fake_quant.cc)
  };
  return k;
}

}  // namespace slim
