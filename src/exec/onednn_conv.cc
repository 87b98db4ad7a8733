#include "slim/exec/onednn_conv.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <cfloat>
#include <cmath>
#include <algorithm>
#include <cstring>
#include <string>

#include "onednn_common.h"
#include "window.h"

namespace slim {

dnnl::engine& onednn_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& onednn_stream() {
  static dnnl::stream stream(onednn_engine());
  return stream;
}

namespace {

int64_t float_bits(float f) {
  int32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

bool scalar_initializer(const Graph& g, const std::string& name, float& out) {
  auto it = g.initializers.find(name);
  if (it == g.initializers.end() || it->second.numel() != 1) return false;
  if (!at::isFloatingType(it->second.scalar_type())) return false;
  out = it->second.item<float>();
  return true;
}

}  // namespace

FusedActivation fusable_activation(const Graph& g, const Node& act) {
  FusedActivation a;
  if (!act.domain.empty() && act.domain != "ai.onnx") return a;
  if (act.op_type == "Relu") {
    a.kind = FusedActivation::Kind::kRelu;
  } else if (act.op_type == "LeakyRelu") {
    a.kind = FusedActivation::Kind::kLeakyRelu;
    a.alpha = act.f("alpha", 0.01f);
  } else if (act.op_type == "Clip") {
    float lo = -FLT_MAX, hi = FLT_MAX;
    if (g.opset < 11) {
      lo = act.f("min", lo);
      hi = act.f("max", hi);
    } else {
      if (act.inputs.size() > 1 && !act.inputs[1].empty() &&
          !scalar_initializer(g, act.inputs[1], lo))
        return a;
      if (act.inputs.size() > 2 && !act.inputs[2].empty() &&
          !scalar_initializer(g, act.inputs[2], hi))
        return a;
    }
    if (!(lo <= hi) || std::isnan(lo) || std::isnan(hi)) return a;  // ATen's kernel reports it
    a.kind = FusedActivation::Kind::kClip;
    a.alpha = std::max(lo, -FLT_MAX);
    a.beta = std::min(hi, FLT_MAX);
  }
  return a;
}

std::optional<PostOp> elementwise_post_op(const Graph& g, const Node& n) {
  using K = PostOp::Kind;
  FusedActivation a = fusable_activation(g, n);
  switch (a.kind) {
    case FusedActivation::Kind::kRelu:
      return PostOp{K::kRelu};
    case FusedActivation::Kind::kLeakyRelu:
      return PostOp{K::kLeakyRelu, a.alpha};
    case FusedActivation::Kind::kClip:
      return PostOp{K::kClip, a.alpha, a.beta};
    case FusedActivation::Kind::kNone:
      break;
  }
  if (!n.domain.empty() && n.domain != "ai.onnx") return std::nullopt;
  if (n.op_type == "HardSwish") return PostOp{K::kHardSwish};
  if (n.op_type == "Sigmoid") return PostOp{K::kSigmoid};
  if (n.op_type == "HardSigmoid") return PostOp{K::kHardSigmoid, n.f("alpha", 0.2f), n.f("beta", 0.5f)};
  return std::nullopt;
}

at::Tensor apply_post_ops(at::Tensor x, const std::vector<PostOp>& ops, const at::Tensor& sum) {
  using K = PostOp::Kind;
  for (const PostOp& op : ops) {
    switch (op.kind) {
      case K::kRelu:
        x = at::relu(x);
        break;
      case K::kLeakyRelu:
        x = at::leaky_relu(x, op.alpha);
        break;
      case K::kClip:
        x = at::hardtanh(x, op.alpha, op.beta);
        break;
      case K::kHardSwish:
        x = at::hardswish(x);
        break;
      case K::kHardSigmoid:
        x = at::clamp(x * static_cast<double>(op.alpha) + static_cast<double>(op.beta), 0.0, 1.0);
        break;
      case K::kSigmoid:
        x = at::sigmoid(x);
        break;
      case K::kSwish:
        x = x * at::sigmoid(x);
        break;
      case K::kSum:
        x = x + sum;
        break;
    }
  }
  return x;
}

bool onednn_conv_available() {
  try {
    (void)onednn_engine();
    return true;
  } catch (const dnnl::error&) {
    return false;
  }
}

struct OneDnnConv::Plan : BoundArgs {
  bool usable = false;  ///< false: oneDNN has only its reference kernel here; ATen runs it
  dnnl::primitive prim;  ///< a convolution, or an inner product for pointwise convs
  bool inner_product = false;
  bool fused = false;  ///< the post-ops run inside the primitive (else with ATen after it)
  dnnl::memory::desc src_md, dst_md, weights_md, bias_md;
  dnnl::memory weights;  ///< reordered into weights_md
  Stamp weight_stamp;
  std::vector<int64_t> out_dims;
  int threads = 1;  ///< OpenMP threads the primitive was created for and runs with
};

/// Multiply-accumulates per thread below which a float conv runs on fewer threads
/// (onednn_threads_for); a Gemm (memory-bound at batch 1) takes a quarter of it.
constexpr int64_t kFloatMacsPerThread = 100'000;

OneDnnConv::OneDnnConv(const Node& node) : node_(node) {}
OneDnnConv::~OneDnnConv() = default;

namespace {

/// The post-ops as oneDNN's: false when one has no oneDNN equivalent.
dnnl::post_ops onednn_post_ops(const std::vector<PostOp>& post) {
  using K = PostOp::Kind;
  using A = dnnl::algorithm;
  dnnl::post_ops ops;
  for (const PostOp& op : post) {
    switch (op.kind) {
      case K::kRelu:
        ops.append_eltwise(1.f, A::eltwise_relu, 0.f, 0.f);
        break;
      case K::kLeakyRelu:
        ops.append_eltwise(1.f, A::eltwise_relu, op.alpha, 0.f);
        break;
      case K::kClip:
        ops.append_eltwise(1.f, A::eltwise_clip, op.alpha, op.beta);
        break;
      case K::kHardSwish:
        ops.append_eltwise(1.f, A::eltwise_hardswish, 1.f / 6, 0.5f);  // 2.x ignores them
        break;
      case K::kHardSigmoid:
        ops.append_eltwise(1.f, A::eltwise_linear, op.alpha, op.beta);
        ops.append_eltwise(1.f, A::eltwise_clip, 0.f, 1.f);
        break;
      case K::kSigmoid:
        ops.append_eltwise(1.f, A::eltwise_logistic, 0.f, 0.f);
        break;
      case K::kSwish:
        ops.append_eltwise(1.f, A::eltwise_swish, 1.f, 0.f);
        break;
      case K::kSum:
        ops.append_sum(1.f);
        break;
    }
  }
  return ops;
}

bool has_sum(const std::vector<PostOp>& post) {
  return std::any_of(post.begin(), post.end(),
                     [](const PostOp& op) { return op.kind == PostOp::Kind::kSum; });
}

}  // namespace

bool OneDnnConv::run(KernelContext& c, const std::vector<PostOp>& post, at::Tensor& sum) {
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  if (c.training || !c.has(0) || !c.has(1)) return false;
  const at::Tensor& x = c.in[0];
  const at::Tensor& w = c.in[1];
  const bool has_bias = c.has(2);
  // Frozen nodes run while the executor trains (a distillation teacher): fine as long as
  // autograd has nothing to record here.
  if (at::GradMode::is_enabled() &&
      (x.requires_grad() || w.requires_grad() || (has_bias && c.in[2].requires_grad())))
    return false;
  if (x.dim() != 4 || w.dim() != 4 || !x.device().is_cpu() || !w.device().is_cpu()) return false;
  if (x.scalar_type() != at::kFloat || w.scalar_type() != at::kFloat) return false;
  if (has_bias && (c.in[2].scalar_type() != at::kFloat || c.in[2].dim() != 1)) return false;
  if (x.numel() == 0) return false;
  const int64_t group = node_.i("group", 1);
  const int64_t oc = w.size(0);
  if (group < 1 || x.size(1) != w.size(1) * group || oc % group != 0) return false;
  if (has_bias && c.in[2].size(0) != oc) return false;

  // The key in a member buffer: no allocation per call once it has grown.
  key_.assign(x.sizes().begin(), x.sizes().end());
  for (const PostOp& op : post) {
    key_.push_back(static_cast<int64_t>(op.kind));
    key_.push_back(float_bits(op.alpha));
    key_.push_back(float_bits(op.beta));
  }
  auto& slot = plans_[key_];
  if (!slot) {
    slot = std::make_unique<Plan>();
    Plan& p = *slot;
    std::vector<int64_t> kshape(w.sizes().begin() + 2, w.sizes().end());
    Window win = resolve_window(node_, x, node_.ints("kernel_shape", kshape));
    if (win.kernel != kshape) return false;  // ATen's kernel reports the mismatch
    dnnl::memory::dims strides = win.strides, pad_l = win.pad_begin, pad_r = win.pad_end;
    dnnl::memory::dims dil;
    p.out_dims = {x.size(0), oc};
    for (int d = 0; d < 2; ++d) {
      dil.push_back(win.dilations[d] - 1);
      int64_t eff = (win.kernel[d] - 1) * win.dilations[d] + 1;
      int64_t o = (x.size(d + 2) + win.pad_begin[d] + win.pad_end[d] - eff) / win.strides[d] + 1;
      if (o <= 0) return false;
      p.out_dims.push_back(o);
    }
    // A pointwise conv (1x1, stride 1, no pads, one group) over NHWC data is a matrix product
    // (N*H*W, C) x (C, O): oneDNN's inner product (brgemm) runs it 1.3-7x faster than its 1x1
    // convolution here (measured on MobileNetV1's layers at batch 64).
    bool pointwise = group == 1 && kshape == std::vector<int64_t>{1, 1};
    for (int d = 0; d < 2; ++d)
      pointwise = pointwise && win.strides[d] == 1 && win.pad_begin[d] == 0 && win.pad_end[d] == 0;
    p.inner_product = pointwise;
    dnnl::memory::dims wdims = group > 1 ? dnnl::memory::dims{group, oc / group, w.size(1),
                                                               w.size(2), w.size(3)}
                                         : dnnl::memory::dims(w.sizes().begin(), w.sizes().end());
    if (pointwise) {
      const int64_t rows = x.size(0) * x.size(2) * x.size(3);
      wdims = {oc, w.size(1)};
      p.src_md = dnnl::memory::desc({rows, x.size(1)}, dt::f32, tag::nc);
      p.dst_md = dnnl::memory::desc({rows, oc}, dt::f32, tag::nc);
    } else {
      p.src_md = dnnl::memory::desc(x.sizes().vec(), dt::f32, tag::nhwc);
      p.dst_md = dnnl::memory::desc(p.out_dims, dt::f32, tag::nhwc);
    }
    auto wany = dnnl::memory::desc(wdims, dt::f32, tag::any);
    p.bias_md = has_bias ? dnnl::memory::desc({oc}, dt::f32, tag::x) : dnnl::memory::desc();
    p.threads = onednn_conv_threads(w, p.out_dims, kFloatMacsPerThread);
    OmpThreads threads(p.threads);
    // With the post-ops inside the primitive if oneDNN has a kernel for that, else without.
    auto create = [&](const std::vector<PostOp>& ops) {
      try {
        dnnl::primitive_attr attr;
        if (!ops.empty()) attr.set_post_ops(onednn_post_ops(ops));
        std::string impl;
        if (pointwise) {
          auto desc = dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference,
                                                        p.src_md, wany, p.bias_md, p.dst_md);
          dnnl::inner_product_forward::primitive_desc pd(desc, attr, onednn_engine());
          impl = pd.impl_info_str();
          p.prim = dnnl::inner_product_forward(pd);
          p.weights_md = pd.weights_desc();
        } else {
          auto desc = dnnl::convolution_forward::desc(
              dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, p.src_md,
              wany, p.bias_md, p.dst_md, strides, dil, pad_l, pad_r);
          dnnl::convolution_forward::primitive_desc pd(desc, attr, onednn_engine());
          impl = pd.impl_info_str();
          p.prim = dnnl::convolution_forward(pd);
          p.weights_md = pd.weights_desc();
        }
        return !onednn_is_reference(impl.c_str());
      } catch (const dnnl::error&) {
        return false;
      }
    };
    p.fused = !post.empty() && create(post);
    if (!p.fused && !create({})) return false;  // plan stays unusable: ATen from now on
    p.weights = dnnl::memory(p.weights_md, onednn_engine());
    p.make(p.src_md, p.weights, p.dst_md, p.bias_md);
    p.usable = true;
  }
  Plan& p = *slot;
  if (!p.usable) return false;

  // Weights: reorder from the tensor as it is (any strides) when it changed since last time.
  Stamp ws = Stamp::of(w);
  if (!(ws == p.weight_stamp)) {
    dnnl::memory::dims wdims = p.weights_md.dims();
    dnnl::memory::dims wstrides;
    if (p.inner_product)
      wstrides = {w.stride(0), w.stride(1)};
    else if (group > 1)
      wstrides = {w.stride(0) * (oc / group), w.stride(0), w.stride(1), w.stride(2), w.stride(3)};
    else
      wstrides = dnnl::memory::dims(w.strides().begin(), w.strides().end());
    reorder_weights(dnnl::memory::desc(wdims, dt::f32, wstrides), w.data_ptr(), p.weights);
    p.weight_stamp = ws;
  }

  at::Tensor xs = x.is_contiguous(at::MemoryFormat::ChannelsLast)
                      ? x
                      : x.contiguous(at::MemoryFormat::ChannelsLast);
  // A residual added in the primitive must have the output's shape: it becomes the output buffer
  // (oneDNN's sum post-op accumulates into what the destination holds). Otherwise this call
  // takes the plan without post-ops and ATen does them.
  const auto nhwc = at::MemoryFormat::ChannelsLast;
  const bool sums = p.fused && has_sum(post);
  if (sums && !(sum.defined() && sum.scalar_type() == at::kFloat && sum.sizes() == p.out_dims &&
                !(at::GradMode::is_enabled() && sum.requires_grad()))) {
    if (!run(c)) return false;
    c.out[0] = apply_post_ops(c.out[0], post, sum);
    return true;
  }
  at::Tensor y;
  if (sums && sum.is_contiguous(nhwc) && sum.use_count() == 1 && sum.storage().use_count() == 1)
    y = std::move(sum);
  else if (sums)
    y = at::empty(p.out_dims, x.options().memory_format(nhwc)).copy_(sum);
  else
    y = at::empty(p.out_dims, x.options().memory_format(nhwc));
  at::Tensor b = has_bias ? c.in[2].contiguous() : at::Tensor();
  p.bind(xs.data_ptr(), y.data_ptr(), has_bias ? b.data_ptr() : nullptr);
  OmpThreads threads(p.threads);
  p.prim.execute(onednn_stream(), p.args);
  onednn_stream().wait();
  c.out[0] = p.fused ? y : apply_post_ops(y, post, sum);
  return true;
}

struct OneDnnGemm::Plan : BoundArgs {
  bool usable = false;
  dnnl::inner_product_forward prim;
  dnnl::memory::desc src_md, dst_md, weights_md, bias_md;
  dnnl::memory weights;
  Stamp weight_stamp;
  int threads = 1;
};

OneDnnGemm::OneDnnGemm(const Node& node) : node_(node) {}
OneDnnGemm::~OneDnnGemm() = default;

bool OneDnnGemm::run(KernelContext& c) {
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  if (c.training || !c.has(0) || !c.has(1)) return false;
  const at::Tensor& a = c.in[0];
  const at::Tensor& b = c.in[1];
  const bool has_bias = c.has(2) && node_.f("beta", 1.f) != 0.f;
  if (node_.i("transA", 0) != 0 || node_.f("alpha", 1.f) != 1.f) return false;
  if (has_bias && node_.f("beta", 1.f) != 1.f) return false;
  if (a.dim() != 2 || b.dim() != 2 || a.scalar_type() != at::kFloat ||
      b.scalar_type() != at::kFloat || !a.device().is_cpu() || !b.device().is_cpu() ||
      a.numel() == 0)
    return false;
  const bool trans_b = node_.i("transB", 0) != 0;
  const int64_t k = a.size(1), n = trans_b ? b.size(0) : b.size(1);
  if ((trans_b ? b.size(1) : b.size(0)) != k) return false;  // ATen's kernel reports it
  at::Tensor bias;
  if (has_bias) {
    bias = c.in[2];
    if (bias.scalar_type() != at::kFloat || bias.numel() != n ||
        !(bias.dim() == 1 || (bias.dim() == 2 && bias.size(0) == 1)))
      return false;
  }
  if (at::GradMode::is_enabled() &&
      (a.requires_grad() || b.requires_grad() || (has_bias && bias.requires_grad())))
    return false;

  const int64_t m = a.size(0);
  auto& slot = plans_[m];
  if (!slot) {
    slot = std::make_unique<Plan>();
    Plan& p = *slot;
    p.src_md = dnnl::memory::desc({m, k}, dt::f32, tag::nc);
    p.dst_md = dnnl::memory::desc({m, n}, dt::f32, tag::nc);
    p.bias_md = has_bias ? dnnl::memory::desc({n}, dt::f32, tag::x) : dnnl::memory::desc();
    p.threads = onednn_threads_for(m, m * n * k, kFloatMacsPerThread / 4);
    OmpThreads threads(p.threads);
    try {
      auto desc = dnnl::inner_product_forward::desc(
          dnnl::prop_kind::forward_inference, p.src_md,
          dnnl::memory::desc({n, k}, dt::f32, tag::any), p.bias_md, p.dst_md);
      dnnl::inner_product_forward::primitive_desc pd(desc, onednn_engine());
      if (onednn_is_reference(pd.impl_info_str())) return false;
      p.prim = dnnl::inner_product_forward(pd);
      p.weights_md = pd.weights_desc();
    } catch (const dnnl::error&) {
      return false;
    }
    p.weights = dnnl::memory(p.weights_md, onednn_engine());
    p.make(p.src_md, p.weights, p.dst_md, p.bias_md);
    p.usable = true;
  }
  Plan& p = *slot;
  if (!p.usable) return false;
  if (has_bias != !p.bias_md.is_zero()) return false;  // a bias present in one call only
  Stamp ws = Stamp::of(b);
  if (ws != p.weight_stamp) {
    // The weights as oneDNN's {out, in}: B itself with transB, else B viewed transposed.
    dnnl::memory::dims strides = trans_b ? dnnl::memory::dims{b.stride(0), b.stride(1)}
                                         : dnnl::memory::dims{b.stride(1), b.stride(0)};
    reorder_weights(dnnl::memory::desc({n, k}, dt::f32, strides), b.data_ptr(), p.weights);
    p.weight_stamp = ws;
  }
  at::Tensor as = a.contiguous();
  at::Tensor bs = has_bias ? bias.contiguous() : at::Tensor();
  at::Tensor y = at::empty({m, n}, a.options());
  p.bind(as.data_ptr(), y.data_ptr(), has_bias ? bs.data_ptr() : nullptr);
  OmpThreads threads(p.threads);
  p.prim.execute(onednn_stream(), p.args);
  onednn_stream().wait();
  c.out[0] = y;
  return true;
}

}  // namespace slim
