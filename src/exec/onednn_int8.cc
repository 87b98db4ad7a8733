#include "slim/exec/onednn_int8.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <cmath>
#include <limits>
#include <oneapi/dnnl/dnnl.hpp>
#include <type_traits>
#include <unordered_map>

#include "int8_elementwise.h"
#include "onednn_common.h"
#include "window.h"

namespace slim {

namespace {

// Positions in Int8Operands::names().
enum Operand { kX, kXScale, kXZero, kW, kWScale, kWZero, kB, kBScale, kBZero, kYScale, kYZero };
constexpr int kNumOperands = 11;

bool default_domain(const Node& n) { return n.domain.empty() || n.domain == "ai.onnx"; }

const at::Tensor* initializer(const Graph& g, const std::string& name) {
  auto it = g.initializers.find(name);
  return it == g.initializers.end() ? nullptr : &it->second;
}

bool all_zero(const at::Tensor& t) { return t.numel() == 0 || !t.ne(0).any().item<bool>(); }

/// A zero point operand: absent (ONNX: 0) or `n` (or one) zeros of one of the given types.
bool zero_point_ok(const at::Tensor& zp, int64_t n, std::initializer_list<at::ScalarType> types) {
  if (!zp.defined()) return true;
  bool type_ok = false;
  for (auto t : types) type_ok = type_ok || zp.scalar_type() == t;
  return type_ok && zp.dim() <= 1 && (zp.numel() == 1 || zp.numel() == n) && all_zero(zp);
}

/// The offset an activation's scalar zero point puts on its levels: 0 for an absent or zero u8/s8
/// zero point, 128 for a u8 zero point of 128 (signed values stored as uint8, as ONNX Runtime
/// prefers: level q means q - 128, so the s8 kernels run on q ^ 0x80), -1 otherwise.
int activation_zero_point(const at::Tensor& zp) {
  if (!zp.defined()) return 0;
  if (zp.numel() != 1 || zp.dim() > 1) return -1;
  if (zp.scalar_type() != at::kByte && zp.scalar_type() != at::kChar) return -1;
  const int64_t v = zp.item<int64_t>();
  if (v == 0) return 0;
  return zp.scalar_type() == at::kByte && v == 128 ? 128 : -1;
}

/// A scale operand: float, one value or `n` values (1-D), all finite.
bool scale_ok(const at::Tensor& s, int64_t n) {
  if (!s.defined() || !at::isFloatingType(s.scalar_type()) || s.dim() > 1) return false;
  if (s.numel() != 1 && s.numel() != n) return false;
  return at::isfinite(s).all().item<bool>();
}

bool positive_scalar(const at::Tensor& s) {
  if (!scale_ok(s, 1)) return false;
  return s.item<float>() > 0;
}

/// True when operands in[idx[k]] still carry stamps[k]: a step's cached scalars are still valid.
bool same_stamps(const std::vector<Stamp>& stamps, const std::vector<at::Tensor>& in,
                 const std::vector<int>& idx) {
  if (stamps.size() != idx.size()) return false;
  for (size_t k = 0; k < idx.size(); ++k)
    if (Stamp::of(in[idx[k]]) != stamps[k]) return false;
  return true;
}

std::vector<Stamp> stamps_of(const std::vector<at::Tensor>& in, const std::vector<int>& idx) {
  std::vector<Stamp> stamps;
  for (int k : idx) stamps.push_back(Stamp::of(in[k]));
  return stamps;
}

/// The scalar scale and zero point of an activation an int8 element-wise step reads or writes.
struct ActivationParams {
  bool ok = false;  ///< a positive finite scale and a zero point activation_zero_point takes
  float scale = 0;
  int zero = 0;
  /// The levels' type, that of the zero point; Undefined when it is absent (an input may then be
  /// either type, and a QuantizeLinear writes uint8).
  at::ScalarType type = at::ScalarType::Undefined;

  static ActivationParams of(const at::Tensor& scale, const at::Tensor& zp) {
    ActivationParams a;
    a.zero = activation_zero_point(zp);
    if (zp.defined()) a.type = zp.scalar_type();
    a.ok = a.zero >= 0 && positive_scalar(scale);
    if (a.ok) a.scale = scale.item<float>();
    return a;
  }
  /// An input's levels `x` have the type these parameters describe.
  bool matches(const at::Tensor& x) const {
    const at::ScalarType t = x.scalar_type();
    return type == at::ScalarType::Undefined ? t == at::kByte || t == at::kChar : t == type;
  }
  /// The type of the levels a QuantizeLinear with these parameters writes.
  at::ScalarType output_type() const {
    return type == at::ScalarType::Undefined ? at::kByte : type;
  }
};

/// The tensors of a DequantizeLinear's scale and zero point, when both are initializers (or the
/// zero point is absent).
bool dq_params(const Graph& g, const Node& dq, at::Tensor& scale, at::Tensor& zp) {
  if (dq.op_type != "DequantizeLinear" || !default_domain(dq) || dq.inputs.size() < 2) return false;
  const at::Tensor* s = initializer(g, dq.input(1));
  if (!s) return false;
  scale = *s;
  zp = at::Tensor();
  if (!dq.input(2).empty()) {
    const at::Tensor* z = initializer(g, dq.input(2));
    if (!z) return false;
    zp = *z;
  }
  return true;
}

/// The DequantizeLinear `dq` (may be null) of a runtime value with a positive scalar scale and a
/// zero point an int8 step takes (activation_zero_point): the quantized side of an int8 step's
/// activation input.
bool activation_dq(const Graph& g, const Node* dq) {
  at::Tensor scale, zp;
  return dq && dq_params(g, *dq, scale, zp) && !g.is_initializer(dq->input(0)) &&
         positive_scalar(scale) && activation_zero_point(zp) >= 0;
}

}  // namespace

std::optional<Int8Operands> match_int8_operands(
    const Graph& g, const Node& op,
    const std::function<const Node*(const std::string&)>& producer) {
  if (!default_domain(op) || op.outputs.size() != 1 || op.inputs.size() < 2) return std::nullopt;
  const bool conv = op.op_type == "Conv";
  if (!conv && op.op_type != "Gemm") return std::nullopt;
  if (!conv && (op.i("transA", 0) != 0 || op.f("alpha", 1.f) != 1.f ||
                (!op.input(2).empty() && op.f("beta", 1.f) != 1.f)))
    return std::nullopt;
  Int8Operands r;
  at::Tensor scale, zp;

  // Activation: DequantizeLinear of a runtime value, scalar scale, zero point 0 (or u8 128).
  const Node* dx = producer(op.input(0));
  if (!activation_dq(g, dx)) return std::nullopt;
  r.x = dx->input(0);
  r.x_scale = dx->input(1);
  r.x_zero_point = dx->input(2);

  // Weights: DequantizeLinear of an int8 initializer along the output-channel axis.
  const Node* dw = producer(op.input(1));
  if (!dw || !dq_params(g, *dw, scale, zp)) return std::nullopt;
  const at::Tensor* w = initializer(g, dw->input(0));
  if (!w || w->scalar_type() != at::kChar || w->dim() != (conv ? 4 : 2)) return std::nullopt;
  r.w_axis = conv || op.i("transB", 0) != 0 ? 0 : 1;
  const int64_t oc = w->size(r.w_axis);
  if (!scale_ok(scale, oc) || !zero_point_ok(zp, oc, {at::kChar})) return std::nullopt;
  if (scale.numel() > 1 || scale.dim() == 1) {
    int64_t axis = dw->i("axis", 1);
    if (axis < 0) axis += w->dim();
    if (scale.dim() == 1 && scale.numel() > 1 && axis != r.w_axis) return std::nullopt;
  }
  r.w = dw->input(0);
  r.w_scale = dw->input(1);
  r.w_zero_point = dw->input(2);

  // Bias: a float initializer, or DequantizeLinear of an int32 initializer.
  const std::string& b = op.input(2);
  if (!b.empty()) {
    if (const at::Tensor* bf = initializer(g, b)) {
      if (!at::isFloatingType(bf->scalar_type()) || bf->numel() != oc) return std::nullopt;
      if (!(bf->dim() == 1 || (!conv && bf->dim() == 2 && bf->size(0) == 1))) return std::nullopt;
      r.b = b;
    } else {
      const Node* db = producer(b);
      if (!db || !dq_params(g, *db, scale, zp)) return std::nullopt;
      const at::Tensor* bq = initializer(g, db->input(0));
      if (!bq || bq->scalar_type() != at::kInt || bq->dim() != 1 || bq->numel() != oc)
        return std::nullopt;
      if (!scale_ok(scale, oc) || !zero_point_ok(zp, oc, {at::kInt})) return std::nullopt;
      if (scale.numel() > 1) {
        int64_t axis = db->i("axis", 1);
        if (axis != 0 && axis != -1) return std::nullopt;  // the DQ kernel reports it
      }
      r.b = db->input(0);
      r.b_scale = db->input(1);
      r.b_zero_point = db->input(2);
    }
  }
  return r;
}

bool int8_output_quantize(const Graph& g, const Node& q) {
  if (q.op_type != "QuantizeLinear" || !default_domain(q) || q.inputs.size() < 2 ||
      q.outputs.size() != 1)
    return false;
  const at::Tensor* s = initializer(g, q.input(1));
  if (!s || !positive_scalar(*s)) return false;
  if (q.input(2).empty()) return true;
  const at::Tensor* zp = initializer(g, q.input(2));
  return zp && activation_zero_point(*zp) >= 0;
}

struct OneDnnInt8::Params {
  std::vector<Stamp> stamps;  ///< of operands 1.. (all but x)
  bool ok = false;            ///< the operands qualify
  /// The type of x's levels, that of its zero point; Undefined when the zero point is absent
  /// (x may then be u8 or s8, and run takes the type it gets).
  at::ScalarType x_type = at::ScalarType::Undefined;
  at::ScalarType y_type = at::kFloat;  ///< kFloat: no QuantizeLinear
  bool x_shift = false;  ///< x is u8 with zero point 128: the kernel reads x ^ 0x80 as s8
  bool y_shift = false;  ///< y is u8 with zero point 128: the kernel writes s8, then ^ 0x80
  int64_t oc = 0;
  at::Tensor weights;             ///< int8, the user's layout
  std::vector<float> out_scales;  ///< per output channel
  float eltwise_scale = 1.f;      ///< 1 / y_scale after a Clip, whose bounds are in real units
  at::Tensor bias;                ///< f32 [oc], pre-divided by x_scale * w_scale; or undefined
};

struct OneDnnInt8::Plan : BoundArgs {
  bool usable = false;
  dnnl::primitive prim;
  std::vector<int64_t> out_dims;
  dnnl::memory weights;  ///< reordered into the primitive's layout
  int threads = 1;  ///< OpenMP threads the primitive was created for and runs with
  at::ScalarType x_type = at::ScalarType::Undefined;  ///< of the levels the primitive reads
  /// u8 levels with zero point 128 read and written as u8 with oneDNN's zero points, not as s8
  /// through an XOR pass each way.
  bool zero_points = false;
};

/// Multiply-accumulates per thread below which an int8 step runs on fewer threads at small batches
/// (int8 kernels do more work per cycle than float ones; onednn_threads_for).
constexpr int64_t kInt8MacsPerThread = 200'000;

OneDnnInt8::OneDnnInt8(const Node& op, Int8Operands operands, FusedActivation act)
    : node_(op), ops_(std::move(operands)), act_(act) {}
OneDnnInt8::~OneDnnInt8() = default;

bool int8_exact_for_any_weights() {
  // The effective ISA honours ONEDNN_MAX_CPU_ISA; VNNI is bit 0x40 (AVX-512) or 0x400 (AVX2).
  static const bool vnni = [] {
    const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    return (isa & static_cast<unsigned>(dnnl_cpu_isa_avx512_core_vnni) &
            ~static_cast<unsigned>(dnnl_cpu_isa_avx512_core)) != 0 ||
           (isa & static_cast<unsigned>(dnnl_cpu_isa_avx2_vnni) &
            ~static_cast<unsigned>(dnnl_cpu_isa_avx2)) != 0;
  }();
  return vnni;
}

bool OneDnnInt8::prepare(const std::vector<at::Tensor>& in) {
  SLIM_ASSERT(in.size() == kNumOperands, node_.label(), ": int8 step got ", in.size(), " operands");
  // Every operand but x: the weights, scales, zero points and bias.
  static const std::vector<int> kParams = [] {
    std::vector<int> v;
    for (int k = kXScale; k < kNumOperands; ++k) v.push_back(k);
    return v;
  }();
  if (params_ && (released_ || same_stamps(params_->stamps, in, kParams))) return params_->ok;
  plans_.clear();  // they point into the old params
  last_plan_ = nullptr;
  params_ = std::make_unique<Params>();
  Params& p = *params_;
  p.stamps = stamps_of(in, kParams);

  const bool conv = node_.op_type == "Conv";
  const at::Tensor& w = in[kW];
  if (!w.defined() || w.scalar_type() != at::kChar || w.dim() != (conv ? 4 : 2)) return false;
  p.oc = w.size(ops_.w_axis);
  const at::Tensor &xs = in[kXScale], &xz = in[kXZero], &ws = in[kWScale];
  const int x_zp = activation_zero_point(xz);
  if (!positive_scalar(xs) || x_zp < 0) return false;
  p.x_shift = x_zp == 128;
  if (!scale_ok(ws, p.oc) || !zero_point_ok(in[kWZero], p.oc, {at::kChar})) return false;
  if (xz.defined()) p.x_type = xz.scalar_type();
  const bool quantized_out = !ops_.y_scale.empty();
  float y_scale = 1.f;
  if (quantized_out) {
    const at::Tensor& yz = in[kYZero];
    const int y_zp = activation_zero_point(yz);
    if (!positive_scalar(in[kYScale]) || y_zp < 0) return false;
    y_scale = in[kYScale].item<float>();
    p.y_type = yz.defined() ? yz.scalar_type() : at::kByte;
    p.y_shift = y_zp == 128;
  }

  // Real output = a[c] * acc[c] + bias[c] with a = x_scale * w_scale, computed in float as the
  // DequantizeLinear kernels do.
  at::Tensor a =
      (xs.to(at::kFloat).reshape({}) * ws.to(at::kFloat).reshape({-1})).expand({p.oc}).contiguous();
  if (!at::isfinite(a).all().item<bool>()) return false;
  if (!int8_exact_for_any_weights() &&
      w.to(at::kShort).abs().max().item<int>() > kInt8WeightBoundNoVnni)
    return false;
  p.weights = w;
  at::Tensor dead = a.eq(0);
  if (dead.any().item<bool>()) {
    // A channel with scale 0 (pruned) contributes only its bias: zero its weights and let the
    // scale be 1 so the bias can still be expressed in accumulator units.
    p.weights = w.clone();
    std::vector<int64_t> shape(w.dim(), 1);
    shape[ops_.w_axis] = p.oc;
    p.weights.masked_fill_(dead.reshape(shape), 0);
    a = at::where(dead, at::ones_like(a), a);
  }
  if (in[kB].defined()) {
    const at::Tensor& b = in[kB];
    if (b.numel() != p.oc) return false;
    at::Tensor real;
    if (ops_.b_scale.empty()) {
      if (!at::isFloatingType(b.scalar_type())) return false;
      real = b.to(at::kFloat).reshape({p.oc});
    } else {
      if (b.scalar_type() != at::kInt || !scale_ok(in[kBScale], p.oc) ||
          !zero_point_ok(in[kBZero], p.oc, {at::kInt}))
        return false;
      real = b.to(at::kFloat).reshape({p.oc}) * in[kBScale].to(at::kFloat).reshape({-1});
    }
    // oneDNN 2.6 adds the bias to the s32 accumulator before the output scale
    // (dst = scale * (acc + bias), checked in tests/exec/int8_exec_test.cc), so it goes in
    // accumulator units.
    p.bias = (real / a).contiguous();
    if (!at::isfinite(p.bias).all().item<bool>()) return false;
  }
  // Relu and LeakyRelu commute with a positive scale, so 1 / y_scale joins the output scale;
  // Clip's bounds are in real units, so the post-op scales after clipping instead.
  at::Tensor out_scale = a;
  if (quantized_out) {
    if (act_.kind == FusedActivation::Kind::kClip)
      p.eltwise_scale = 1.f / y_scale;
    else
      out_scale = a / y_scale;
  }
  if (!at::isfinite(out_scale).all().item<bool>()) return false;
  out_scale = out_scale.contiguous();
  p.out_scales.assign(out_scale.data_ptr<float>(), out_scale.data_ptr<float>() + p.oc);
  p.ok = true;
  return true;
}

int OneDnnInt8::packed_operand() const {
  const bool packed = params_ && params_->ok && last_plan_ && *last_plan_ && (*last_plan_)->usable;
  return packed ? static_cast<int>(kW) : -1;
}

void OneDnnInt8::release_packed() {
  released_ = true;
  if (params_) params_->weights = at::Tensor();
}

bool OneDnnInt8::run(const std::vector<at::Tensor>& in, at::Tensor& out) {
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  if (!prepare(in)) return false;
  const Params& p = *params_;
  const at::Tensor& x = in[kX];
  const bool conv = node_.op_type == "Conv";
  if (!x.defined() || !x.device().is_cpu() || x.numel() == 0) return false;
  const at::ScalarType x_type = x.scalar_type();
  if (p.x_type == at::ScalarType::Undefined ? x_type != at::kByte && x_type != at::kChar
                                            : x_type != p.x_type)
    return false;
  if (x.dim() != (conv ? 4 : 2)) return false;

  // Consecutive runs usually have the same input shape: skip the map lookup then.
  if (!last_plan_ || !x.sizes().equals(last_dims_)) {
    last_dims_ = x.sizes().vec();
    last_plan_ = &plans_[last_dims_];
  }
  auto& slot = *last_plan_;
  if (!slot || slot->x_type != x_type) {
    if (released_) return false;  // the weights to pack are gone
    slot = std::make_unique<Plan>();
    Plan& pl = *slot;
    pl.x_type = x_type;
    const at::Tensor& w = p.weights;
    const int64_t oc = p.oc;
    // u8 levels with zero point 128: as u8 with oneDNN's zero points where its kernel takes
    // them (VNNI CPUs, where s8 would be exact too), else as s8 through an XOR pass each way.
    pl.zero_points = (p.x_shift || p.y_shift) && int8_exact_for_any_weights();
    for (;; pl.zero_points = false) {
      const bool zp = pl.zero_points;
      const dt src_dt = x_type == at::kByte && (!p.x_shift || zp) ? dt::u8 : dt::s8;
      // Without VNNI oneDNN runs s8 inputs by halving the weights (its weight scale adjustment),
      // which drops the low bit of every odd weight: not the QDQ graph's result.
      if (src_dt == dt::s8 && !int8_exact_for_any_weights()) return false;
      const dt dst_dt = p.y_type == at::kFloat                ? dt::f32
                        : p.y_type == at::kByte && (!p.y_shift || zp) ? dt::u8
                                                                      : dt::s8;
      dnnl::memory::desc src_md, dst_md, user_w_md;
      dnnl::memory::dims strides, dil, pad_l, pad_r;
      bool inner_product = !conv;
      if (conv) {
        const int64_t group = node_.i("group", 1);
        if (group < 1 || x.size(1) != w.size(1) * group || oc % group != 0) return false;
        std::vector<int64_t> kshape(w.sizes().begin() + 2, w.sizes().end());
        Window win;
        try {
          win = resolve_window(node_, x, node_.ints("kernel_shape", kshape));
        } catch (const Error&) {
          return false;  // the float Conv kernel reports it
        }
        if (win.kernel != kshape) return false;
        strides = win.strides;
        pad_l = win.pad_begin;
        pad_r = win.pad_end;
        pl.out_dims = {x.size(0), oc};
        for (int d = 0; d < 2; ++d) {
          dil.push_back(win.dilations[d] - 1);
          int64_t eff = (win.kernel[d] - 1) * win.dilations[d] + 1;
          int64_t o = (x.size(d + 2) + win.pad_begin[d] + win.pad_end[d] - eff) / win.strides[d] + 1;
          if (o <= 0) return false;
          pl.out_dims.push_back(o);
        }
        // As in OneDnnConv: a pointwise conv over NHWC data is a matrix product, which oneDNN's
        // inner product runs faster than its 1x1 convolution.
        bool pointwise = group == 1 && kshape == std::vector<int64_t>{1, 1};
        for (int d = 0; d < 2; ++d)
          pointwise =
              pointwise && win.strides[d] == 1 && win.pad_begin[d] == 0 && win.pad_end[d] == 0;
        inner_product = pointwise;
        if (pointwise) {
          const int64_t rows = x.size(0) * x.size(2) * x.size(3);
          src_md = dnnl::memory::desc({rows, x.size(1)}, src_dt, tag::nc);
          dst_md = dnnl::memory::desc({rows, oc}, dst_dt, tag::nc);
          user_w_md = dnnl::memory::desc({oc, w.size(1)}, dt::s8, {w.stride(0), w.stride(1)});
        } else {
          src_md = dnnl::memory::desc(x.sizes().vec(), src_dt, tag::nhwc);
          dst_md = dnnl::memory::desc(pl.out_dims, dst_dt, tag::nhwc);
          if (group > 1)
            user_w_md = dnnl::memory::desc(
                {group, oc / group, w.size(1), w.size(2), w.size(3)}, dt::s8,
                {w.stride(0) * (oc / group), w.stride(0), w.stride(1), w.stride(2), w.stride(3)});
          else
            user_w_md = dnnl::memory::desc(w.sizes().vec(), dt::s8, w.strides().vec());
        }
      } else {
        // Gemm: weights [N, K] (transB = 1) or [K, N]; oneDNN wants them as (N, K).
        const bool trans_b = ops_.w_axis == 0;
        const int64_t k = trans_b ? w.size(1) : w.size(0);
        if (x.size(1) != k) return false;
        pl.out_dims = {x.size(0), oc};
        src_md = dnnl::memory::desc({x.size(0), k}, src_dt, tag::nc);
        dst_md = dnnl::memory::desc({x.size(0), oc}, dst_dt, tag::nc);
        user_w_md = trans_b ? dnnl::memory::desc({oc, k}, dt::s8, {w.stride(0), w.stride(1)})
                            : dnnl::memory::desc({oc, k}, dt::s8, {w.stride(1), w.stride(0)});
      }
      dnnl::memory::desc wany(user_w_md.dims(), dt::s8, tag::any);
      dnnl::memory::desc bias_md =
          p.bias.defined() ? dnnl::memory::desc({oc}, dt::f32, tag::x) : dnnl::memory::desc();
      pl.threads = onednn_conv_threads(w, pl.out_dims, kInt8MacsPerThread);
      OmpThreads threads(pl.threads);
      try {
        dnnl::primitive_attr attr;
        attr.set_output_scales(1 << 1, p.out_scales);
        if (zp && p.x_shift) attr.set_zero_points(DNNL_ARG_SRC, 0, {128});
        if (zp && p.y_shift) attr.set_zero_points(DNNL_ARG_DST, 0, {128});
        if (act_.active()) {
          dnnl::post_ops ops;
          switch (act_.kind) {
            case FusedActivation::Kind::kRelu:
              ops.append_eltwise(p.eltwise_scale, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
              break;
            case FusedActivation::Kind::kLeakyRelu:
              ops.append_eltwise(p.eltwise_scale, dnnl::algorithm::eltwise_relu, act_.alpha, 0.f);
              break;
            case FusedActivation::Kind::kClip:
              ops.append_eltwise(p.eltwise_scale, dnnl::algorithm::eltwise_clip, act_.alpha,
                                 act_.beta);
              break;
            case FusedActivation::Kind::kNone:
              break;
          }
          attr.set_post_ops(ops);
        }
        dnnl::memory::desc weights_md;
        std::string impl;
        if (inner_product) {
          auto desc = dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference, src_md,
                                                        wany, bias_md, dst_md);
          dnnl::inner_product_forward::primitive_desc pd(desc, attr, onednn_engine());
          impl = pd.impl_info_str();
          pl.prim = dnnl::inner_product_forward(pd);
          weights_md = pd.weights_desc();
        } else {
          auto desc = dnnl::convolution_forward::desc(
              dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_md, wany,
              bias_md, dst_md, strides, dil, pad_l, pad_r);
          dnnl::convolution_forward::primitive_desc pd(desc, attr, onednn_engine());
          impl = pd.impl_info_str();
          pl.prim = dnnl::convolution_forward(pd);
          weights_md = pd.weights_desc();
        }
        if (onednn_is_reference(impl.c_str())) {
          if (zp) continue;  // without zero points
          return false;      // plan stays unusable
        }
        // With s8 sources the kernel adds 128 to make them u8 and subtracts the compensation
        // sum(w) * 128 that the reorder into its own weights layout computes.
        pl.weights = dnnl::memory(weights_md, onednn_engine());
        reorder_weights(user_w_md, p.weights.data_ptr(), pl.weights);
        pl.make(src_md, pl.weights, dst_md, bias_md);
        pl.usable = true;
      } catch (const dnnl::error&) {
        if (zp) continue;
        return false;
      }
      break;
    }
  }
  Plan& pl = *slot;
  if (!pl.usable) return false;

  at::Tensor xs = conv ? (x.is_contiguous(at::MemoryFormat::ChannelsLast)
                              ? x
                              : x.contiguous(at::MemoryFormat::ChannelsLast))
                       : x.contiguous();
  // u8 levels q with zero point 128 are the s8 levels q - 128 = q ^ 0x80 (same bits otherwise).
  if (p.x_shift && !pl.zero_points) xs = at::bitwise_xor(xs, 128).view(at::kChar);
  const at::ScalarType y_type = p.y_shift && !pl.zero_points ? at::kChar : p.y_type;
  at::Tensor y = at::empty(
      pl.out_dims, x.options().dtype(y_type).memory_format(conv ? at::MemoryFormat::ChannelsLast
                                                                : at::MemoryFormat::Contiguous));
  pl.bind(xs.data_ptr(), y.data_ptr(), p.bias.defined() ? p.bias.data_ptr() : nullptr);
  OmpThreads threads(pl.threads);
  pl.prim.execute(onednn_stream(), pl.args);
  onednn_stream().wait();
  if (p.y_shift && !pl.zero_points) {
    y = y.view(at::kByte);
    y.bitwise_xor_(128);
  }
  out = y;
  return true;
}

std::optional<Int8AddOperands> match_int8_add(
    const Graph& g, const Node& op,
    const std::function<const Node*(const std::string&)>& producer) {
  if (!default_domain(op) || op.op_type != "Add" || op.inputs.size() != 2 || op.outputs.size() != 1)
    return std::nullopt;
  Int8AddOperands r;
  std::string* fields[2][3] = {{&r.a, &r.a_scale, &r.a_zero_point},
                               {&r.b, &r.b_scale, &r.b_zero_point}};
  for (int k = 0; k < 2; ++k) {
    const Node* dq = producer(op.input(k));
    if (!activation_dq(g, dq)) return std::nullopt;
    *fields[k][0] = dq->input(0);
    *fields[k][1] = dq->input(1);
    *fields[k][2] = dq->input(2);
  }
  return r;
}

struct Int8Add::Params {
  std::vector<Stamp> stamps;  ///< of the scale and zero point operands
  ActivationParams a, b, y;
};

namespace {
const std::vector<int> kAddParams = {1, 2, 4, 5, 6, 7};  // the scales and zero points
}  // namespace

Int8Add::Int8Add(Int8AddOperands operands, bool relu) : ops_(std::move(operands)), relu_(relu) {}
Int8Add::~Int8Add() = default;

bool Int8Add::run(const std::vector<at::Tensor>& in, at::Tensor& out) {
  SLIM_ASSERT(in.size() == 8, "int8 Add got ", in.size(), " operands");
  const at::Tensor &a = in[0], &b = in[3];
  if (!a.defined() || !b.defined() || !a.device().is_cpu() || !b.device().is_cpu() ||
      !a.sizes().equals(b.sizes()) || a.numel() == 0)
    return false;
  // The scales and zero points are checked and read once, again only when one of them changes
  // (reading them costs more than adding a small map).
  if (!params_ || !same_stamps(params_->stamps, in, kAddParams)) {
    params_ = std::make_unique<Params>(
        Params{stamps_of(in, kAddParams), ActivationParams::of(in[1], in[2]),
               ActivationParams::of(in[4], in[5]), ActivationParams::of(in[6], in[7])});
  }
  const Params& p = *params_;
  if (!p.a.ok || !p.b.ok || !p.y.ok || !p.a.matches(a) || !p.b.matches(b)) return false;
  const at::ScalarType y_type = p.y.output_type();
  // One pass in memory order: both inputs and the output in a's layout (NHWC between int8 steps).
  const auto fmt =
      a.dim() == 4 && !a.is_contiguous() && a.is_contiguous(at::MemoryFormat::ChannelsLast)
          ? at::MemoryFormat::ChannelsLast
          : at::MemoryFormat::Contiguous;
  const at::Tensor ac = a.contiguous(fmt), bc = b.contiguous(fmt);
  at::Tensor y = at::empty(a.sizes(), a.options().dtype(y_type).memory_format(fmt));
  const ConstLevels la{ac.data_ptr(), ac.scalar_type() == at::kByte},
      lb{bc.data_ptr(), bc.scalar_type() == at::kByte};
  const Levels ly{y.data_ptr(), y_type == at::kByte};
  // Chunks of 64K elements across the threads (a batch of 64 of resnet18's first blocks is 1M).
  at::parallel_for(0, a.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
    add_levels(la, p.a.scale, p.a.zero, lb, p.b.scale, p.b.zero, ly, p.y.scale, p.y.zero, relu_,
               begin, end - begin);
  });
  out = y;
  return true;
}

std::optional<Int8PoolOperands> int8_activation_levels(const Graph& g, const Node* dq) {
  if (!activation_dq(g, dq)) return std::nullopt;
  Int8PoolOperands r;
  r.x = dq->input(0);
  r.x_scale = dq->input(1);
  r.x_zero_point = dq->input(2);
  return r;
}

std::optional<Int8PoolOperands> match_int8_maxpool(
    const Graph& g, const Node& op,
    const std::function<const Node*(const std::string&)>& producer) {
  if (!default_domain(op) || op.op_type != "MaxPool" || op.inputs.size() != 1 ||
      op.outputs.empty() || (op.outputs.size() > 1 && !op.outputs[1].empty()) ||
      op.ints("kernel_shape").size() != 2)
    return std::nullopt;
  return int8_activation_levels(g, producer(op.input(0)));
}

namespace {

/// Output length of a pooling window along one dim, as LibTorch computes it.
int64_t pooled_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dilation,
                    bool ceil_mode) {
  const int64_t span = in + 2 * pad - dilation * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t out = span / stride + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;  // the last window must start inside
  return out;
}

/// out[k] = max(out[k], in[k]) for k < n. Its own function with restrict pointers and the count
/// by value: 8-bit stores may alias anything, so inside the pooling loop the compiler would
/// reload every captured variable and not vectorize.
template <typename T>
void max_into(T* __restrict out, const T* __restrict in, int64_t n) {
  for (int64_t k = 0; k < n; ++k) out[k] = std::max(out[k], in[k]);
}

/// Max pooling of 8-bit levels in NHWC: for each output pixel, the element-wise max of the rows
/// of C levels its window covers (padding never wins).
template <typename T>
void max_pool_rows(const T* x, T* y, int64_t n, int64_t h, int64_t w, int64_t c, int64_t oh,
                   int64_t ow, const Window& win) {
  const int64_t kh = win.kernel[0], kw = win.kernel[1], sh = win.strides[0], sw = win.strides[1];
  const int64_t ph = win.pad_begin[0], pw = win.pad_begin[1], dh = win.dilations[0],
                dw = win.dilations[1];
  const int64_t rows = n * oh;
  // A second thread pays for its fork and join only from about a million compares on.
  const int64_t grain = std::max<int64_t>(1, (1 << 20) / std::max<int64_t>(1, ow * c * kh * kw));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / oh, oy = r % oh;
      for (int64_t ox = 0; ox < ow; ++ox) {
        T* out = y + ((b * oh + oy) * ow + ox) * c;
        std::fill(out, out + c, std::numeric_limits<T>::lowest());
        for (int64_t i = 0; i < kh; ++i) {
          const int64_t iy = oy * sh - ph + i * dh;
          if (iy < 0 || iy >= h) continue;
          for (int64_t j = 0; j < kw; ++j) {
            const int64_t ix = ox * sw - pw + j * dw;
            if (ix < 0 || ix >= w) continue;
            max_into(out, x + ((b * h + iy) * w + ix) * c, c);
          }
        }
      }
    }
  });
}

at::Tensor max_pool_nhwc(const at::Tensor& x, const Window& win, bool ceil_mode) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t oh =
      pooled_size(h, win.kernel[0], win.pad_begin[0], win.strides[0], win.dilations[0], ceil_mode);
  const int64_t ow =
      pooled_size(w, win.kernel[1], win.pad_begin[1], win.strides[1], win.dilations[1], ceil_mode);
  at::Tensor y =
      at::empty({n, c, oh, ow}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (x.scalar_type() == at::kByte)
    max_pool_rows(x.data_ptr<uint8_t>(), y.data_ptr<uint8_t>(), n, h, w, c, oh, ow, win);
  else
    max_pool_rows(x.data_ptr<int8_t>(), y.data_ptr<int8_t>(), n, h, w, c, oh, ow, win);
  return y;
}

}  // namespace

struct Int8MaxPool::Params {
  std::vector<Stamp> stamps;  ///< of the scale and zero point operands
  ActivationParams x, y;
  std::vector<int64_t> dims;  ///< the input dims `window` was resolved for
  Window window;
};

namespace {
const std::vector<int> kPoolParams = {1, 2, 3, 4};  // the scales and zero points
}  // namespace

Int8MaxPool::Int8MaxPool(const Node& op, Int8PoolOperands operands)
    : node_(op), ops_(std::move(operands)) {}
Int8MaxPool::~Int8MaxPool() = default;

bool Int8MaxPool::run(const std::vector<at::Tensor>& in, at::Tensor& out) {
  SLIM_ASSERT(in.size() == 5, "int8 MaxPool got ", in.size(), " operands");
  const at::Tensor& x = in[0];
  if (!x.defined() || !x.device().is_cpu() || x.dim() != 4 || x.numel() == 0) return false;
  if (!params_ || !same_stamps(params_->stamps, in, kPoolParams)) {
    auto fresh = std::make_unique<Params>();
    fresh->stamps = stamps_of(in, kPoolParams);
    fresh->x = ActivationParams::of(in[1], in[2]);
    fresh->y = ActivationParams::of(in[3], in[4]);
    params_ = std::move(fresh);
  }
  Params& p = *params_;
  if (!p.x.ok || !p.y.ok || !p.x.matches(x)) return false;
  const at::ScalarType xt = x.scalar_type(), y_type = p.y.output_type();
  if (!x.sizes().equals(p.dims)) {  // consecutive runs usually have the same shape
    p.window = resolve_window(node_, x, node_.ints("kernel_shape"));
    p.dims = x.sizes().vec();
  }
  const Window& w = p.window;
  if (!w.aten_pool_padding()) return false;
  const bool ceil_mode = node_.i("ceil_mode", 0) != 0;
  at::Tensor levels;
  if (x.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    levels = max_pool_nhwc(x, w, ceil_mode);
  } else {
    // The levels as a LibTorch quantized tensor (no copy); pooling never looks at the scale.
    at::Tensor qx = at::_make_per_tensor_quantized_tensor(x, p.x.scale, p.x.zero);
    levels =
        at::max_pool2d(qx, w.kernel, w.strides, w.pad_begin, w.dilations, ceil_mode).int_repr();
  }
  if (xt == y_type && p.x.zero == p.y.zero && p.x.scale == p.y.scale) {
    out = levels;
    return true;
  }
  // Requantize: y = Q(DQ(level)) per element, as the QuantizeLinear would on the float max.
  const auto fmt =
      levels.is_contiguous() ? at::MemoryFormat::Contiguous : at::MemoryFormat::ChannelsLast;
  if (!levels.is_contiguous(fmt)) return false;
  at::Tensor y = at::empty(levels.sizes(), levels.options().dtype(y_type).memory_format(fmt));
  const auto* px = static_cast<const uint8_t*>(levels.data_ptr());  // 1-byte levels
  auto* py = static_cast<uint8_t*>(y.data_ptr());
  at::parallel_for(0, levels.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    float buf[1024];
    for (int64_t i = begin; i < end; i += 1024) {
      const int64_t n = std::min<int64_t>(1024, end - i);
      dequantize_levels({px + i, xt == at::kByte}, buf, 0, n, p.x.scale, p.x.zero);
      quantize_levels(buf, {py + i, y_type == at::kByte}, 0, n, p.y.scale, p.y.zero);
    }
  });
  out = y;
  return true;
}

std::optional<Int8TableOperands> match_int8_table(
    const Graph& g, const Node& op,
    const std::function<const Node*(const std::string&)>& producer) {
  if (!default_domain(op) || op.inputs.empty() || op.outputs.size() != 1) return std::nullopt;
  return int8_activation_levels(g, producer(op.input(0)));
}

namespace {

/// out[b] = f(dequantize(level b)) for every byte b (uint8 levels unless x's type is int8, as an
/// absent zero point reads either), f applied with ATen as apply_post_ops does.
void level_values(const ActivationParams& x, const std::vector<PostOp>& f, float out[256]) {
  const bool u8 = x.type != at::kChar;
  at::Tensor levels = at::arange(256, at::kInt).to(at::kByte);
  if (!u8) levels = levels.view(at::kChar);
  at::Tensor real = at::empty({256}, at::kFloat);
  dequantize_levels({levels.data_ptr(), u8}, real.data_ptr<float>(), 0, 256, x.scale, x.zero);
  if (!f.empty()) real = apply_post_ops(real, f, at::Tensor()).contiguous();
  std::memcpy(out, real.data_ptr<float>(), 256 * sizeof(float));
}

}  // namespace

struct Int8Table::Params {
  std::vector<Stamp> stamps;  ///< of the scale and zero point operands
  ActivationParams x, y;
  uint8_t table[256];  ///< output level (as a byte) by input byte
};

namespace {
const std::vector<int> kTableParams = {1, 2, 3, 4};  // the scales and zero points
}  // namespace

Int8Table::Int8Table(Int8TableOperands operands, std::vector<PostOp> f)
    : ops_(std::move(operands)), f_(std::move(f)) {}
Int8Table::~Int8Table() = default;

bool Int8Table::run(const std::vector<at::Tensor>& in, at::Tensor& out) {
  SLIM_ASSERT(in.size() == 5, "int8 table got ", in.size(), " operands");
  const at::Tensor& x = in[0];
  if (!x.defined() || !x.device().is_cpu() || x.numel() == 0) return false;
  if (!params_ || !same_stamps(params_->stamps, in, kTableParams)) {
    auto p = std::make_unique<Params>();
    p->stamps = stamps_of(in, kTableParams);
    p->x = ActivationParams::of(in[1], in[2]);
    p->y = ActivationParams::of(in[3], in[4]);
    params_ = std::move(p);
    if (params_->x.ok && params_->y.ok) {
      // Every input level, dequantized, through f, quantized.
      float real[256];
      level_values(params_->x, f_, real);
      const at::ScalarType yt = params_->y.output_type();
      quantize_levels(real, {params_->table, yt == at::kByte}, 0, 256, params_->y.scale,
                      params_->y.zero);
    }
  }
  const Params& p = *params_;
  if (!p.x.ok || !p.y.ok || !p.x.matches(x)) return false;
  // A table built for one input type serves only that type (an absent zero point reads either).
  if (p.x.type == at::ScalarType::Undefined && x.scalar_type() != at::kByte) return false;
  const auto fmt =
      x.dim() == 4 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast)
          ? at::MemoryFormat::ChannelsLast
          : at::MemoryFormat::Contiguous;
  const at::Tensor xc = x.contiguous(fmt);
  at::Tensor y = at::empty(x.sizes(), x.options().dtype(p.y.output_type()).memory_format(fmt));
  const uint8_t* src = static_cast<const uint8_t*>(xc.data_ptr());
  uint8_t* dst = static_cast<uint8_t*>(y.data_ptr());
  const uint8_t* table = p.table;
  at::parallel_for(0, x.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
    lookup_levels(src + begin, dst + begin, end - begin, table);
  });
  out = y;
  return true;
}

namespace {

/// The layout of a 4-D int8 step input in memory: NHWC (ChannelsLast), NCHW (Contiguous), or
/// nullopt for anything else.
std::optional<at::MemoryFormat> layout_4d(const at::Tensor& x) {
  if (x.dim() != 4) return std::nullopt;
  if (x.is_contiguous()) return at::MemoryFormat::Contiguous;
  if (x.is_contiguous(at::MemoryFormat::ChannelsLast)) return at::MemoryFormat::ChannelsLast;
  return std::nullopt;
}

/// The levels' bytes: one byte each, whichever of uint8 or int8.
const uint8_t* level_bytes(const at::Tensor& x) {
  return static_cast<const uint8_t*>(x.data_ptr());
}

}  // namespace

struct Int8GlobalAvgPool::Params {
  std::vector<Stamp> stamps;  ///< of the scale and zero point operands
  ActivationParams x, y;
  float value[256];  ///< fx(dequantized level) by level byte
};

Int8GlobalAvgPool::Int8GlobalAvgPool(Int8PoolOperands operands, std::vector<PostOp> fx)
    : ops_(std::move(operands)), fx_(std::move(fx)) {}
Int8GlobalAvgPool::~Int8GlobalAvgPool() = default;

bool Int8GlobalAvgPool::run(const std::vector<at::Tensor>& in, at::Tensor& out) {
  SLIM_ASSERT(in.size() == 5, "int8 GlobalAveragePool got ", in.size(), " operands");
  const at::Tensor& x = in[0];
  if (!x.defined() || !x.device().is_cpu() || x.numel() == 0) return false;
  const std::optional<at::MemoryFormat> fmt = layout_4d(x);
  if (!fmt) return false;
  if (!params_ || !same_stamps(params_->stamps, in, kTableParams)) {
    auto p = std::make_unique<Params>();
    p->stamps = stamps_of(in, kTableParams);
    p->x = ActivationParams::of(in[1], in[2]);
    p->y = ActivationParams::of(in[3], in[4]);
    if (p->x.ok && p->y.ok) level_values(p->x, fx_, p->value);
    params_ = std::move(p);
  }
  const Params& p = *params_;
  if (!p.x.ok || !p.y.ok || !p.x.matches(x)) return false;
  if (p.x.type == at::ScalarType::Undefined && x.scalar_type() != at::kByte) return false;
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  const uint8_t* src = level_bytes(x);
  const float* value = p.value;
  std::vector<float> mean(static_cast<size_t>(n * c));
  if (*fmt == at::MemoryFormat::ChannelsLast) {
    at::parallel_for(0, n, 1, [&](int64_t b0, int64_t b1) {
      std::vector<double> sum(static_cast<size_t>(c));
      for (int64_t b = b0; b < b1; ++b) {
        std::fill(sum.begin(), sum.end(), 0.0);
        const uint8_t* row = src + b * hw * c;
        for (int64_t i = 0; i < hw; ++i, row += c) accumulate_levels(row, sum.data(), c, value);
        for (int64_t k = 0; k < c; ++k)
          mean[b * c + k] = static_cast<float>(sum[k] / static_cast<double>(hw));
      }
    });
  } else {
    at::parallel_for(0, n * c, std::max<int64_t>(1, 16384 / hw), [&](int64_t p0, int64_t p1) {
      for (int64_t q = p0; q < p1; ++q) {
        const uint8_t* plane = src + q * hw;
        double sum = 0;
        for (int64_t i = 0; i < hw; ++i) sum += value[plane[i]];
        mean[q] = static_cast<float>(sum / static_cast<double>(hw));
      }
    });
  }
  const at::ScalarType yt = p.y.output_type();
  at::Tensor y = at::empty({n, c, 1, 1}, x.options().dtype(yt));
  quantize_levels(mean.data(), {y.data_ptr(), yt == at::kByte}, 0, n * c, p.y.scale, p.y.zero);
  out = y;
  return true;
}

struct Int8ChannelScale::Params {
  std::vector<Stamp> stamps;  ///< of the scale and zero point operands
  ActivationParams x, s, y;
  float value[256];  ///< fx(dequantized level) by level byte
  float gate[256];   ///< gate(dequantized level) by s level byte
};

namespace {
const std::vector<int> kScaleParams = {1, 2, 4, 5, 6, 7};  // the scales and zero points
}  // namespace

Int8ChannelScale::Int8ChannelScale(Int8ScaleOperands operands, std::vector<PostOp> fx,
                                   std::vector<PostOp> gate)
    : ops_(std::move(operands)), fx_(std::move(fx)), gate_(std::move(gate)) {}
Int8ChannelScale::~Int8ChannelScale() = default;

bool Int8ChannelScale::run(const std::vector<at::Tensor>& in, at::Tensor& out) {
  SLIM_ASSERT(in.size() == 8, "int8 channel scale got ", in.size(), " operands");
  const at::Tensor &x = in[0], &s = in[3];
  if (!x.defined() || !s.defined() || !x.device().is_cpu() || !s.device().is_cpu() ||
      x.numel() == 0)
    return false;
  const std::optional<at::MemoryFormat> fmt = layout_4d(x);
  if (!fmt || s.dim() != 4 || s.size(0) != x.size(0) || s.size(1) != x.size(1) || s.size(2) != 1 ||
      s.size(3) != 1 || !s.is_contiguous())
    return false;
  if (!params_ || !same_stamps(params_->stamps, in, kScaleParams)) {
    auto p = std::make_unique<Params>();
    p->stamps = stamps_of(in, kScaleParams);
    p->x = ActivationParams::of(in[1], in[2]);
    p->s = ActivationParams::of(in[4], in[5]);
    p->y = ActivationParams::of(in[6], in[7]);
    if (p->x.ok && p->s.ok && p->y.ok) {
      level_values(p->x, fx_, p->value);
      level_values(p->s, gate_, p->gate);
    }
    params_ = std::move(p);
  }
  const Params& p = *params_;
  if (!p.x.ok || !p.s.ok || !p.y.ok || !p.x.matches(x) || !p.s.matches(s)) return false;
  if (p.x.type == at::ScalarType::Undefined && x.scalar_type() != at::kByte) return false;
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  // The gate of each (batch, channel): s's level looked up in the gate's table.
  std::vector<float> gate(static_cast<size_t>(n * c));
  const uint8_t* sl = level_bytes(s);
  for (int64_t i = 0; i < n * c; ++i) gate[i] = p.gate[sl[i]];
  const float* g = gate.data();
  const at::ScalarType yt = p.y.output_type();
  at::Tensor y = at::empty(x.sizes(), x.options().dtype(yt).memory_format(*fmt));
  const uint8_t* src = level_bytes(x);
  uint8_t* dst = static_cast<uint8_t*>(y.data_ptr());
  const bool u8 = yt == at::kByte;
  const float* value = p.value;
  if (*fmt == at::MemoryFormat::ChannelsLast) {
    // One pixel's channels at a time: value times that channel's gate, quantized.
    at::parallel_for(0, n * hw, std::max<int64_t>(1, 16384 / c), [&](int64_t p0, int64_t p1) {
      for (int64_t q = p0; q < p1; ++q)
        scale_levels(src + q * c, g + (q / hw) * c, value, {dst + q * c, u8}, c, p.y.scale,
                     p.y.zero);
    });
  } else {
    at::parallel_for(0, n * c, std::max<int64_t>(1, 16384 / hw), [&](int64_t p0, int64_t p1) {
      std::vector<float> buf(static_cast<size_t>(hw));
      for (int64_t q = p0; q < p1; ++q) {
        const uint8_t* plane = src + q * hw;
        for (int64_t i = 0; i < hw; ++i) buf[i] = value[plane[i]] * g[q];
        quantize_levels(buf.data(), {dst + q * hw, u8}, 0, hw, p.y.scale, p.y.zero);
      }
    });
  }
  out = y;
  return true;
}

}  // namespace slim
