// Neural-network kernels: convolution, pooling, normalization, activations, dense layers.
#include <ATen/Parallel.h>

#include <cmath>
#include <limits>

#include "slim/dist/dist.h"
#include "slim/exec/kernel.h"
#include "window.h"

namespace slim {

Window resolve_window(const Node& n, const at::Tensor& x, std::vector<int64_t> kernel) {
  const int64_t sp = x.dim() - 2;
  SLIM_CHECK(sp >= 1 && sp <= 3, n.label(), ": input must be 3-D to 5-D (N, C, spatial...), got ",
             shape_to_string(x.sizes().vec()));
  Window w;
  w.kernel = std::move(kernel);
  SLIM_CHECK(static_cast<int64_t>(w.kernel.size()) == sp, n.label(), ": kernel_shape has ",
             w.kernel.size(), " dims but the input has ", sp, " spatial dims");
  w.strides = n.ints("strides", std::vector<int64_t>(sp, 1));
  w.dilations = n.ints("dilations", std::vector<int64_t>(sp, 1));
  SLIM_CHECK(static_cast<int64_t>(w.strides.size()) == sp, n.label(), ": strides has ",
             w.strides.size(), " values, expected ", sp);
  SLIM_CHECK(static_cast<int64_t>(w.dilations.size()) == sp, n.label(), ": dilations has ",
             w.dilations.size(), " values, expected ", sp);
  std::string auto_pad = n.s("auto_pad", "NOTSET");
  w.pad_begin.assign(sp, 0);
  w.pad_end.assign(sp, 0);
  if (auto_pad == "NOTSET") {
    auto pads = n.ints("pads", std::vector<int64_t>(2 * sp, 0));
    SLIM_CHECK(static_cast<int64_t>(pads.size()) == 2 * sp, n.label(), ": pads has ", pads.size(),
               " values, expected ", 2 * sp);
    for (int64_t d = 0; d < sp; ++d) {
      w.pad_begin[d] = pads[d];
      w.pad_end[d] = pads[d + sp];
    }
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    for (int64_t d = 0; d < sp; ++d) {
      int64_t in = x.size(d + 2);
      int64_t out = (in + w.strides[d] - 1) / w.strides[d];
      int64_t eff_k = (w.kernel[d] - 1) * w.dilations[d] + 1;
      int64_t total = std::max<int64_t>(0, (out - 1) * w.strides[d] + eff_k - in);
      int64_t small = total / 2, big = total - small;
      w.pad_begin[d] = auto_pad == "SAME_UPPER" ? small : big;
      w.pad_end[d] = auto_pad == "SAME_UPPER" ? big : small;
    }
  } else {
    SLIM_CHECK(auto_pad == "VALID", n.label(), ": auto_pad '", auto_pad,
               "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
  }
  return w;
}

namespace {

/// Pads the spatial dims of x explicitly (ONNX begin/end order -> ATen's last-dim-first order).
at::Tensor pad_spatial(const at::Tensor& x, const Window& w, double value) {
  const size_t sp = w.pad_begin.size();
  std::vector<int64_t> p;
  for (size_t k = 0; k < sp; ++k) {
    size_t d = sp - 1 - k;
    p.push_back(w.pad_begin[d]);
    p.push_back(w.pad_end[d]);
  }
  return at::constant_pad_nd(x, p, value);
}

void conv(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  const at::Tensor& wt = c.x(1);
  SLIM_CHECK(wt.dim() == x.dim(), c.node.label(), ": weight rank ", wt.dim(),
             " does not match input rank ", x.dim());
  std::vector<int64_t> kshape(wt.sizes().begin() + 2, wt.sizes().end());
  Window w = resolve_window(c.node, x, c.node.ints("kernel_shape", kshape));
  int64_t group = c.node.i("group", 1);
  SLIM_CHECK(x.size(1) == wt.size(1) * group, c.node.label(), ": input has ", x.size(1),
             " channels but weight ", shape_to_string(wt.sizes().vec()), " with group=", group,
             " expects ", wt.size(1) * group);
  at::Tensor in = x;
  std::vector<int64_t> padding = w.pad_begin;
  if (!w.symmetric()) {
    in = pad_spatial(x, w, 0.0);
    padding.assign(padding.size(), 0);
  }
  at::Tensor bias = c.has(2) ? c.in[2] : at::Tensor();
  c.out[0] = at::convolution(in, wt, bias, w.strides, padding, w.dilations, false,
                             std::vector<int64_t>(padding.size(), 0), group);
}

/// ConvTranspose: X [N, C, spatial...], W [C, M / group, k...], optional B [M]. Output size per
/// spatial dim: stride * (in - 1) + output_padding + (k - 1) * dilation + 1 - pad_begin - pad_end,
/// with the pads given, from output_shape, or from auto_pad (then out = in * stride).
void conv_transpose(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  const at::Tensor& wt = c.x(1);
  SLIM_CHECK(x.dim() >= 3 && x.dim() <= 5, c.node.label(),
             ": input must be 3-D to 5-D (N, C, spatial...), got ",
             shape_to_string(x.sizes().vec()));
  SLIM_CHECK(wt.dim() == x.dim(), c.node.label(), ": weight rank ", wt.dim(),
             " does not match input rank ", x.dim());
  const int64_t sp = x.dim() - 2, group = c.node.i("group", 1);
  SLIM_CHECK(group >= 1 && x.size(1) == wt.size(0) && wt.size(0) % group == 0, c.node.label(),
             ": input has ", x.size(1), " channels but weight ", shape_to_string(wt.sizes().vec()),
             " with group=", group, " expects ", wt.size(0));
  auto per_dim = [&](const char* key, int64_t def) {
    auto v = c.node.ints(key, std::vector<int64_t>(sp, def));
    SLIM_CHECK(static_cast<int64_t>(v.size()) == sp, c.node.label(), ": ", key, " has ", v.size(),
               " values, expected ", sp);
    return v;
  };
  const std::vector<int64_t> kernel(wt.sizes().begin() + 2, wt.sizes().end());
  SLIM_CHECK(c.node.ints("kernel_shape", kernel) == kernel, c.node.label(), ": kernel_shape ",
             shape_to_string(c.node.ints("kernel_shape")), " does not match the weight's ",
             shape_to_string(kernel));
  const auto strides = per_dim("strides", 1), dilations = per_dim("dilations", 1),
             out_pad = per_dim("output_padding", 0);
  std::vector<int64_t> full(sp), pad_begin(sp, 0), pad_end(sp, 0);
  for (int64_t d = 0; d < sp; ++d)
    full[d] = strides[d] * (x.size(d + 2) - 1) + out_pad[d] + (kernel[d] - 1) * dilations[d] + 1;
  const std::string auto_pad = c.node.s("auto_pad", "NOTSET");
  std::vector<int64_t> out_shape = c.node.ints("output_shape");
  if (static_cast<int64_t>(out_shape.size()) == sp + 2)
    out_shape.erase(out_shape.begin(), out_shape.begin() + 2);  // written with N and C
  if (out_shape.empty() && (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER"))
    for (int64_t d = 0; d < sp; ++d) out_shape.push_back(x.size(d + 2) * strides[d]);
  if (!out_shape.empty()) {
    SLIM_CHECK(static_cast<int64_t>(out_shape.size()) == sp, c.node.label(), ": output_shape ",
               shape_to_string(out_shape), " does not have ", sp, " spatial dims");
    for (int64_t d = 0; d < sp; ++d) {
      const int64_t total = full[d] - out_shape[d];
      // ONNX: SAME_UPPER puts the odd pad at the end, anything else at the beginning. Halves
      // round down, so a negative total (output_shape beyond `full`) grows the end first.
      const int64_t half = total >= 0 ? total / 2 : -((1 - total) / 2);
      pad_begin[d] = auto_pad == "SAME_UPPER" ? half : total - half;
      pad_end[d] = total - pad_begin[d];
    }
  } else if (auto_pad == "NOTSET") {
    auto all = c.node.ints("pads", std::vector<int64_t>(2 * sp, 0));
    SLIM_CHECK(static_cast<int64_t>(all.size()) == 2 * sp, c.node.label(), ": pads has ",
               all.size(), " values, expected ", 2 * sp);
    for (int64_t d = 0; d < sp; ++d) {
      pad_begin[d] = all[d];
      pad_end[d] = all[d + sp];
    }
  } else {
    SLIM_CHECK(auto_pad == "VALID", c.node.label(), ": auto_pad '", auto_pad,
               "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
  }
  for (int64_t d = 0; d < sp; ++d)
    SLIM_CHECK(full[d] - pad_begin[d] - pad_end[d] > 0, c.node.label(), ": output dim ", d,
               " would be ", full[d] - pad_begin[d] - pad_end[d]);
  at::Tensor bias = c.has(2) ? c.in[2] : at::Tensor();
  if (bias.defined())
    SLIM_CHECK(bias.numel() == wt.size(1) * group, c.node.label(), ": bias has ", bias.numel(),
               " values for ", wt.size(1) * group, " output channels");
  // ATen takes one symmetric pad per dim and an output_padding below the stride or dilation.
  bool direct = pad_begin == pad_end;
  for (int64_t d = 0; d < sp; ++d)
    direct = direct && pad_begin[d] >= 0 && (out_pad[d] < strides[d] || out_pad[d] < dilations[d]);
  if (direct) {
    c.out[0] = at::convolution(x, wt, bias, strides, pad_begin, dilations, /*transposed=*/true,
                               out_pad, group);
    return;
  }
  // Otherwise: the unpadded result, grown with zeros at the end by output_padding (no input
  // reaches there), then cropped by the pads (negative pads add zeros).
  at::Tensor y = at::convolution(x, wt, {}, strides, std::vector<int64_t>(sp, 0), dilations, true,
                                 std::vector<int64_t>(sp, 0), group);
  std::vector<int64_t> grow;  // ATen order: last dim first, (begin, end) pairs
  for (int64_t d = sp - 1; d >= 0; --d) {
    grow.push_back(-pad_begin[d]);
    grow.push_back(out_pad[d] - pad_end[d]);
  }
  y = at::constant_pad_nd(y, grow, 0);  // negative entries crop
  if (bias.defined()) {
    std::vector<int64_t> shape(y.dim(), 1);
    shape[1] = bias.numel();
    y = y + bias.reshape(shape);
  }
  c.out[0] = y;
}

void max_pool(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  Window w = resolve_window(c.node, x, c.node.ints("kernel_shape"));
  bool ceil_mode = c.node.i("ceil_mode", 0) != 0;
  bool want_indices = c.out.size() > 1 && !c.node.outputs[1].empty();
  const int64_t sp = x.dim() - 2;
  const bool direct = w.aten_pool_padding();
  // ATen pools floating types only; integers go through double, exact up to 2^53.
  bool integral = !at::isFloatingType(x.scalar_type());
  at::Tensor in = integral ? x.to(at::kDouble) : x;
  std::vector<int64_t> padding = w.pad_begin;
  if (!direct) {
    in = pad_spatial(in, w, -std::numeric_limits<double>::infinity());
    padding.assign(sp, 0);
  }
  at::Tensor y, idx;
  if (sp == 1) {
    std::tie(y, idx) =
        at::max_pool1d_with_indices(in, w.kernel, w.strides, padding, w.dilations, ceil_mode);
  } else if (sp == 2) {
    std::tie(y, idx) =
        at::max_pool2d_with_indices(in, w.kernel, w.strides, padding, w.dilations, ceil_mode);
  } else {
    std::tie(y, idx) =
        at::max_pool3d_with_indices(in, w.kernel, w.strides, padding, w.dilations, ceil_mode);
  }
  c.out[0] = integral ? y.to(x.scalar_type()) : y;
  if (!want_indices) return;
  // ATen's indices are flat within one (padded) spatial volume; ONNX's are flat over the whole
  // unpadded input, row-major (storage_order 0) or with the spatial dims column-major (1).
  bool column_major = c.node.i("storage_order", 0) != 0;
  at::Tensor rest = idx;
  std::vector<at::Tensor> coord(sp);
  for (int64_t d = sp - 1; d >= 0; --d) {
    int64_t size = in.size(d + 2);
    coord[d] = at::remainder(rest, size) - (direct ? 0 : w.pad_begin[d]);
    rest = at::div(rest, size, "floor");
  }
  at::Tensor flat = at::zeros_like(idx);
  int64_t stride = 1;
  for (int64_t k = 0; k < sp; ++k) {
    int64_t d = column_major ? k : sp - 1 - k;
    flat = flat + coord[d] * stride;
    stride *= x.size(d + 2);
  }
  std::vector<int64_t> nc_shape(x.dim(), 1);
  nc_shape[0] = x.size(0);
  nc_shape[1] = x.size(1);
  at::Tensor base = at::arange(x.size(0) * x.size(1), idx.options()).view(nc_shape) * stride;
  c.out[1] = flat + base;
}

void average_pool(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  Window w = resolve_window(c.node, x, c.node.ints("kernel_shape"));
  bool ceil_mode = c.node.i("ceil_mode", 0) != 0;
  bool include_pad = c.node.i("count_include_pad", 0) != 0;
  for (auto d : w.dilations)
    SLIM_CHECK(d == 1, c.node.label(), ": dilations other than 1 are not supported");
  const int64_t sp = x.dim() - 2;
  auto pool = [&](const at::Tensor& t, const std::vector<int64_t>& padding, bool cip) {
    if (sp == 1) return at::avg_pool1d(t, w.kernel, w.strides, padding, ceil_mode, cip);
    if (sp == 2)
      return at::avg_pool2d(t, w.kernel, w.strides, padding, ceil_mode, cip, c10::nullopt);
    return at::avg_pool3d(t, w.kernel, w.strides, padding, ceil_mode, cip, c10::nullopt);
  };
  const bool direct = w.aten_pool_padding();
  if (direct) {
    c.out[0] = pool(x, w.pad_begin, include_pad);
    return;
  }
  // Asymmetric padding: pad explicitly; without count_include_pad divide the window sums by
  // the number of real (non-pad) elements in each window.
  std::vector<int64_t> zero(sp, 0);
  at::Tensor padded = pad_spatial(x, w, 0.0);
  at::Tensor sums = pool(padded, zero, true);
  if (include_pad) {
    c.out[0] = sums;
    return;
  }
  std::vector<int64_t> ones_shape(x.dim(), 1);
  for (int64_t d = 0; d < sp; ++d) ones_shape[d + 2] = x.size(d + 2);
  at::Tensor mask = pad_spatial(at::ones(ones_shape, x.options()), w, 0.0);
  c.out[0] = sums / pool(mask, zero, true);
}

}  // namespace

at::Tensor spatial_mean(const KernelContext& c, const at::Tensor& x, bool keepdim) {
  if (c.training || x.dim() != 4 || x.scalar_type() != at::kFloat || !x.device().is_cpu() ||
      x.numel() == 0 || (x.requires_grad() && at::GradMode::is_enabled()))
    return at::Tensor();
  const bool nhwc = !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
  if (!nhwc && !x.is_contiguous()) return at::Tensor();
  const int64_t n = x.size(0), ch = x.size(1), hw = x.size(2) * x.size(3);
  at::Tensor y = keepdim ? at::empty({n, ch, 1, 1}, x.options()) : at::empty({n, ch}, x.options());
  const float* src = x.data_ptr<float>();
  float* dst = y.data_ptr<float>();
  const double count = static_cast<double>(hw);
  if (nhwc) {
    at::parallel_for(0, n, 1, [&](int64_t b0, int64_t b1) {
      std::vector<double> sum(static_cast<size_t>(ch));
      for (int64_t b = b0; b < b1; ++b) {
        std::fill(sum.begin(), sum.end(), 0.0);
        const float* row = src + b * hw * ch;
        for (int64_t i = 0; i < hw; ++i, row += ch)
          for (int64_t k = 0; k < ch; ++k) sum[k] += row[k];
        for (int64_t k = 0; k < ch; ++k) dst[b * ch + k] = static_cast<float>(sum[k] / count);
      }
    });
  } else {
    at::parallel_for(0, n * ch, std::max<int64_t>(1, 16384 / hw), [&](int64_t p0, int64_t p1) {
      for (int64_t q = p0; q < p1; ++q) {
        const float* plane = src + q * hw;
        double sum = 0;
        for (int64_t i = 0; i < hw; ++i) sum += plane[i];
        dst[q] = static_cast<float>(sum / count);
      }
    });
  }
  return y;
}

namespace {

void global_average_pool(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  SLIM_CHECK(x.dim() >= 3, c.node.label(), ": input must have spatial dims, got ",
             shape_to_string(x.sizes().vec()));
  if (at::Tensor y = spatial_mean(c, x, true); y.defined()) {
    c.out[0] = y;
    return;
  }
  std::vector<int64_t> dims;
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  c.out[0] = x.mean(dims, true);
}

void global_max_pool(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  SLIM_CHECK(x.dim() >= 3, c.node.label(), ": input must have spatial dims, got ",
             shape_to_string(x.sizes().vec()));
  std::vector<int64_t> dims;
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  c.out[0] = at::amax(x, dims, true);
}

void batch_norm(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  const at::Tensor &scale = c.x(1), &bias = c.x(2), &mean = c.x(3), &var = c.x(4);
  double eps = c.node.f("epsilon", 1e-5f);
  double momentum = c.node.f("momentum", 0.9f);
  const int64_t ch = x.dim() > 1 ? x.size(1) : 1;
  for (const auto* t : {&scale, &bias, &mean, &var})
    SLIM_CHECK(t->numel() == ch, c.node.label(), ": parameter of shape ",
               shape_to_string(t->sizes().vec()), " does not match ", ch, " channels");
  if (c.node.i("training_mode", 0) != 0) {
    // ONNX training_mode semantics (opset 14+): biased batch variance for both the
    // normalization and the running-variance update.
    std::vector<int64_t> dims{0};
    for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
    at::Tensor bm = x.mean(dims);
    at::Tensor bv = x.var(dims, /*unbiased=*/false);
    std::vector<int64_t> bshape(x.dim(), 1);
    bshape[1] = ch;
    c.out[0] = (x - bm.view(bshape)) / at::sqrt(bv.view(bshape) + eps) * scale.view(bshape) +
               bias.view(bshape);
    if (c.out.size() > 1) c.out[1] = mean * momentum + bm * (1 - momentum);
    if (c.out.size() > 2) c.out[2] = var * momentum + bv * (1 - momentum);
    return;
  }
  if (c.training)
    if (dist::Group* group = dist::SyncBatchNormScope::active()) {
      // SyncBatchNorm: statistics over every rank's part of the global batch. The sums go
      // through a differentiable all-reduce, so the backward pass reduces their gradients too.
      std::vector<int64_t> dims{0};
      for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
      std::vector<int64_t> bshape(x.dim(), 1);
      bshape[1] = ch;
      // Sums in double, as ATen's batch_norm accumulates its statistics.
      const double local = static_cast<double>(x.numel() / std::max<int64_t>(1, ch));
      at::Tensor s1 = dist::all_reduce_sum_autograd(
          *group, at::cat({x.sum(dims, false, at::kDouble),
                           at::full({1}, local, x.options().dtype(at::kDouble))}));
      const double n = s1[ch].item<double>();
      SLIM_CHECK(n > 1, c.node.label(), ": synchronised BatchNormalization over ", n,
                 " values per channel; a batch needs at least 2");
      at::Tensor bm = (s1.narrow(0, 0, ch) / n).to(x.scalar_type());
      at::Tensor xc = x - bm.view(bshape);
      at::Tensor bv =
          (dist::all_reduce_sum_autograd(*group, (xc * xc).sum(dims, false, at::kDouble)) / n)
              .to(x.scalar_type());
      c.out[0] = xc * at::rsqrt(bv.view(bshape) + eps) * scale.view(bshape) + bias.view(bshape);
      {
        at::NoGradGuard ng;
        mean.mul_(momentum).add_(bm.detach() * (1 - momentum));
        var.mul_(momentum).add_(bv.detach() * (n / (n - 1)) * (1 - momentum));
      }
      for (size_t k = 1; k < c.out.size(); ++k)
        if (!c.node.outputs[k].empty()) c.out[k] = k == 1 ? mean : var;
      return;
    }
  // Executor training mode follows PyTorch: batch statistics, running stats updated in place
  // (ATen's momentum is ONNX's 1 - momentum).
  c.out[0] = at::batch_norm(x, scale, bias, mean, var, c.training, 1.0 - momentum, eps,
                            /*cudnn_enabled=*/false);
  for (size_t k = 1; k < c.out.size(); ++k)
    if (!c.node.outputs[k].empty()) c.out[k] = k == 1 ? mean : var;
}

void relu(KernelContext& c) {
  c.out[0] = c.can_overwrite(0) ? at::relu_(c.in[0]) : at::relu(c.x(0));
}
void sigmoid(KernelContext& c) { c.out[0] = at::sigmoid(c.x(0)); }
void tanh_(KernelContext& c) { c.out[0] = at::tanh(c.x(0)); }
void leaky_relu(KernelContext& c) { c.out[0] = at::leaky_relu(c.x(0), c.node.f("alpha", 0.01f)); }
void hard_sigmoid(KernelContext& c) {
  double alpha = c.node.f("alpha", 0.2f), beta = c.node.f("beta", 0.5f);
  c.out[0] = at::clamp(c.x(0) * alpha + beta, 0.0, 1.0);
}
void hard_swish(KernelContext& c) { c.out[0] = at::hardswish(c.x(0)); }

void clip(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  c10::optional<at::Scalar> lo, hi;
  if (c.opset < 11) {
    if (c.node.has("min")) lo = at::Scalar(c.node.f("min", 0));
    if (c.node.has("max")) hi = at::Scalar(c.node.f("max", 0));
  } else {
    if (c.has(1)) lo = c.in[1].item();
    if (c.has(2)) hi = c.in[2].item();
  }
  if (!lo && !hi) {
    c.out[0] = x;
    return;
  }
  // ReLU6-style clips with both bounds keep the fast hardtanh path.
  if (lo && hi && at::isFloatingType(x.scalar_type())) {
    c.out[0] = c.can_overwrite(0) ? at::hardtanh_(c.in[0], *lo, *hi) : at::hardtanh(x, *lo, *hi);
    return;
  }
  c.out[0] = at::clamp(x, lo, hi);
}

/// Softmax, LogSoftmax and Hardmax along one axis: from opset 13 the axis itself (default -1);
/// before, the input flattened to 2-D at `axis` (default 1) and the op applied to the rows.
template <typename Fn>
void along_softmax_axis(KernelContext& c, Fn fn) {
  const at::Tensor& x = c.x(0);
  if (c.opset >= 13) {
    int64_t axis = normalize_axis(c.node, c.node.i("axis", -1), x.dim());
    c.out[0] = fn(x, axis);
    return;
  }
  int64_t axis = normalize_axis(c.node, c.node.i("axis", 1), x.dim());
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.size(d);
  c.out[0] = fn(x.reshape({outer, -1}), 1).reshape(x.sizes());
}

void softmax(KernelContext& c) {
  along_softmax_axis(c, [](const at::Tensor& x, int64_t axis) { return at::softmax(x, axis); });
}

void log_softmax(KernelContext& c) {
  along_softmax_axis(c, [](const at::Tensor& x, int64_t axis) { return at::log_softmax(x, axis); });
}

void hardmax(KernelContext& c) {
  along_softmax_axis(c, [](const at::Tensor& x, int64_t axis) {
    // 1 at the first maximum along the axis, 0 elsewhere.
    return at::zeros_like(x).scatter_(axis, x.argmax(axis, /*keepdim=*/true), 1);
  });
}

void instance_norm(KernelContext& c) {
  const at::Tensor &x = c.x(0), &scale = c.x(1), &bias = c.x(2);
  SLIM_CHECK(x.dim() >= 3, c.node.label(), ": input must have spatial dims, got ",
             shape_to_string(x.sizes().vec()));
  for (const auto* t : {&scale, &bias})
    SLIM_CHECK(t->numel() == x.size(1), c.node.label(), ": parameter of shape ",
               shape_to_string(t->sizes().vec()), " does not match ", x.size(1), " channels");
  c.out[0] = at::instance_norm(x, scale, bias, {}, {}, /*use_input_stats=*/true, 0.0,
                               c.node.f("epsilon", 1e-5f), /*cudnn_enabled=*/false);
}

void layer_norm(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  const int64_t axis = normalize_axis(c.node, c.node.i("axis", -1), x.dim());
  const double eps = c.node.f("epsilon", 1e-5f);
  std::vector<int64_t> normalized(x.sizes().begin() + axis, x.sizes().end());
  auto param = [&](size_t i) -> at::Tensor {
    if (!c.has(i)) return {};
    const at::Tensor& p = c.in[i];
    SLIM_CHECK(at::infer_size(p.sizes(), normalized) == normalized, c.node.label(), ": ",
               i == 1 ? "Scale" : "B", " of shape ", shape_to_string(p.sizes().vec()),
               " does not broadcast to the normalized shape ", shape_to_string(normalized));
    return p.expand(normalized).contiguous();
  };
  // ATen's mean and 1/std have ONNX's shapes: the outer dims, then 1 per normalized dim.
  auto [y, mean, inv_std] = at::native_layer_norm(x, normalized, param(1), param(2), eps);
  c.out[0] = y;
  if (c.out.size() > 1) c.out[1] = mean;
  if (c.out.size() > 2) c.out[2] = inv_std;
}

void lrn(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  SLIM_CHECK(x.dim() >= 3, c.node.label(), ": input must be N, C, spatial..., got ",
             shape_to_string(x.sizes().vec()));
  SLIM_CHECK(c.node.has("size"), c.node.label(), ": attribute 'size' is required");
  const int64_t size = c.node.i("size");
  SLIM_CHECK(size > 0, c.node.label(), ": size must be positive, got ", size);
  const double alpha = c.node.f("alpha", 1e-4f), beta = c.node.f("beta", 0.75f),
               bias = c.node.f("bias", 1.f);
  // Sum of squares over channels [c - floor((size-1)/2), c + ceil((size-1)/2)], zeros outside.
  std::vector<int64_t> pads(2 * (x.dim() - 1), 0);
  pads[pads.size() - 2] = (size - 1) / 2;
  pads[pads.size() - 1] = size - 1 - (size - 1) / 2;
  at::Tensor sq = at::constant_pad_nd(x * x, pads, 0).unfold(1, size, 1).sum(-1);
  c.out[0] = x / at::pow(sq * (alpha / static_cast<double>(size)) + bias, beta);
}

void dropout(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  double ratio =
      c.opset >= 12 ? (c.has(1) ? c.in[1].item<double>() : 0.5) : c.node.f("ratio", 0.5f);
  bool train = c.training;
  if (c.opset >= 12 && c.has(2)) train = c.in[2].item<bool>();
  bool want_mask = c.out.size() > 1 && !c.node.outputs[1].empty();
  if (!train || ratio == 0.0) {
    c.out[0] = x;
    if (want_mask) c.out[1] = at::ones(x.sizes(), x.options().dtype(at::kBool));
    return;
  }
  SLIM_CHECK(ratio < 1.0, c.node.label(), ": ratio must be < 1, got ", ratio);
  if (!want_mask) {
    c.out[0] = at::dropout(x, ratio, true);
    return;
  }
  at::Tensor mask = at::rand(x.sizes(), x.options()) >= ratio;
  c.out[0] = x * mask.to(x.scalar_type()) / (1.0 - ratio);
  c.out[1] = mask;
}

void gemm(KernelContext& c) {
  at::Tensor a = c.x(0), b = c.x(1);
  SLIM_CHECK(a.dim() == 2 && b.dim() == 2, c.node.label(), ": A and B must be 2-D, got ",
             shape_to_string(a.sizes().vec()), " and ", shape_to_string(b.sizes().vec()));
  if (c.node.i("transA", 0)) a = a.t();
  if (c.node.i("transB", 0)) b = b.t();
  SLIM_CHECK(a.size(1) == b.size(0), c.node.label(), ": inner dims differ: A is ",
             shape_to_string(a.sizes().vec()), " and B is ", shape_to_string(b.sizes().vec()),
             " after transposition");
  double alpha = c.node.f("alpha", 1.0f), beta = c.node.f("beta", 1.0f);
  if (c.has(2) && beta != 0.0) {
    c.out[0] = at::addmm(c.in[2], a, b, beta, alpha);
  } else {
    at::Tensor y = at::mm(a, b);
    c.out[0] = alpha == 1.0 ? y : y * alpha;
  }
}

void matmul(KernelContext& c) { c.out[0] = at::matmul(c.x(0), c.x(1)); }

}  // namespace

const std::vector<KernelEntry>& nn_kernels() {
  static const std::vector<KernelEntry> k = {
      {"Conv", conv},
      {"ConvTranspose", conv_transpose},
      {"MaxPool", max_pool},
      {"AveragePool", average_pool},
      {"GlobalAveragePool", global_average_pool},
      {"GlobalMaxPool", global_max_pool},
      {"BatchNormalization", batch_norm},
      {"Relu", relu},
      {"LeakyRelu", leaky_relu},
      {"Sigmoid", sigmoid},
      {"HardSigmoid", hard_sigmoid},
      {"HardSwish", hard_swish},
      {"Tanh", tanh_},
      {"Clip", clip},
      {"Softmax", softmax},
      {"LogSoftmax", log_softmax},
      {"Hardmax", hardmax},
      {"InstanceNormalization", instance_norm},
      {"LayerNormalization", layer_norm},
      {"LRN", lrn},
      {"Dropout", dropout},
      {"Gemm", gemm},
      {"MatMul", matmul},
  };
  return k;
}

}  // namespace slim
