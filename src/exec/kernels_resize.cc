// Resize (opsets 11-17): nearest, linear and cubic interpolation, applied one axis at a time as
// ONNX's reference does (the last axis first), for every coordinate_transformation_mode.
//
// Along one axis of input length L and scale s (output length floor(L * s), or the given size
// with s = size / L), output index x maps to the source coordinate u (the mode's formula, with the
// "resized length" L * s as a real number, as ONNX's reference computes it). With i0 = ceil(u) - 1
// and r = u - i0 in (0, 1], the taps are i0, i0 + 1 (nearest, linear) or i0 - 1 .. i0 + 2 (cubic),
// clamped to the edge, with weights from r. exclude_outside zeroes the weights of taps outside
// [0, L) and renormalizes; tf_crop_and_resize writes extrapolation_value where u falls outside.
#include <algorithm>
#include <cmath>
#include <optional>

#include "slim/exec/kernel.h"

namespace slim {

namespace {

/// A 1-D float tensor (scales, roi) as doubles, read from memory once.
std::vector<double> to_double_vector(const at::Tensor& t) {
  at::Tensor d = t.to(at::kDouble).contiguous().reshape({-1});
  const double* p = d.data_ptr<double>();
  return std::vector<double>(p, p + d.numel());
}

struct ResizeAttrs {
  std::string mode, coord, nearest;
  double cubic_a, extrapolation;
  bool exclude_outside;
};

/// Source coordinate of output index x along an axis; false when tf_crop_and_resize leaves the
/// input (the output is then extrapolation_value).
bool source_coordinate(const Node& n, const ResizeAttrs& a, int64_t x, int64_t in_len, double scale,
                       double roi_start, double roi_end, double* u) {
  const double out_len = scale * static_cast<double>(in_len);  // real, as the reference has it
  const double xd = static_cast<double>(x), last = static_cast<double>(in_len - 1);
  if (a.coord == "half_pixel") {
    *u = (xd + 0.5) / scale - 0.5;
  } else if (a.coord == "pytorch_half_pixel") {
    *u = out_len == 1 ? -0.5 : (xd + 0.5) / scale - 0.5;
  } else if (a.coord == "align_corners") {
    *u = out_len == 1 ? 0.0 : xd * last / (out_len - 1);
  } else if (a.coord == "asymmetric") {
    *u = xd / scale;
  } else if (a.coord == "tf_half_pixel_for_nn") {
    *u = (xd + 0.5) / scale;
  } else if (a.coord == "tf_crop_and_resize") {
    *u = out_len == 1 ? (roi_end - roi_start) * last / 2
                      : xd * (roi_end - roi_start) * last / (out_len - 1);
    *u += roi_start * last;
    return *u >= 0 && *u <= last;
  } else {
    SLIM_FAIL(n.label(), ": coordinate_transformation_mode '", a.coord,
              "' is not one of half_pixel, pytorch_half_pixel, align_corners, asymmetric, "
              "tf_half_pixel_for_nn, tf_crop_and_resize");
  }
  return true;
}

/// Weights of the taps i0 .. for fraction r in (0, 1].
std::vector<double> tap_weights(const Node& n, const ResizeAttrs& a, double r) {
  if (a.mode == "nearest") {
    if (r == 1) return {0, 1};
    if (a.nearest == "round_prefer_floor") return {r <= 0.5 ? 1.0 : 0.0, r <= 0.5 ? 0.0 : 1.0};
    if (a.nearest == "round_prefer_ceil") return {r < 0.5 ? 1.0 : 0.0, r < 0.5 ? 0.0 : 1.0};
    if (a.nearest == "floor") return {1, 0};
    if (a.nearest == "ceil") return {0, 1};
    SLIM_FAIL(n.label(), ": nearest_mode '", a.nearest,
              "' is not one of round_prefer_floor, round_prefer_ceil, floor, ceil");
  }
  if (a.mode == "linear") return {1 - r, r};
  SLIM_CHECK(a.mode == "cubic", n.label(), ": mode '", a.mode,
             "' is not one of nearest, linear, cubic");
  const double A = a.cubic_a, p = r + 1, q = 1 - r, s = 2 - r;
  return {((A * p - 5 * A) * p + 8 * A) * p - 4 * A, ((A + 2) * r - (A + 3)) * r * r + 1,
          ((A + 2) * q - (A + 3)) * q * q + 1, ((A * s - 5 * A) * s + 8 * A) * s - 4 * A};
}

/// Resizes x along `axis` to `out_len`.
at::Tensor resize_axis(const Node& n, const ResizeAttrs& a, const at::Tensor& x, int64_t axis,
                       int64_t out_len, double scale, double roi_start, double roi_end) {
  const int64_t in_len = x.size(axis);
  SLIM_CHECK(in_len > 0, n.label(), ": cannot resize an empty axis ", axis);
  const int64_t taps = a.mode == "cubic" ? 4 : 2, first = a.mode == "cubic" ? -1 : 0;
  std::vector<int64_t> index(out_len * taps);
  std::vector<double> weight(out_len * taps);
  std::vector<int64_t> outside;  // tf_crop_and_resize: outputs that get extrapolation_value
  for (int64_t o = 0; o < out_len; ++o) {
    double u = 0;
    if (!source_coordinate(n, a, o, in_len, scale, roi_start, roi_end, &u)) {
      outside.push_back(o);
      u = 0;
    }
    const double i0 = std::ceil(u) - 1;
    auto w = tap_weights(n, a, u - i0);
    double kept = 0;
    for (int64_t t = 0; t < taps; ++t) {
      const int64_t src = static_cast<int64_t>(i0) + first + t;
      if (a.exclude_outside && (src < 0 || src >= in_len)) w[t] = 0;
      kept += w[t];
      index[o * taps + t] = std::clamp<int64_t>(src, 0, in_len - 1);
    }
    for (int64_t t = 0; t < taps; ++t)
      weight[o * taps + t] = a.exclude_outside && kept != 0 ? w[t] / kept : w[t];
  }
  at::Tensor y;
  if (a.mode == "nearest") {
    // One tap has weight 1: select it (exact for any type).
    std::vector<int64_t> pick(out_len);
    for (int64_t o = 0; o < out_len; ++o) pick[o] = index[o * 2 + (weight[o * 2 + 1] > 0 ? 1 : 0)];
    y = x.index_select(axis, at::tensor(pick, at::kLong));
  } else {
    const at::Tensor xf = at::isFloatingType(x.scalar_type()) ? x : x.to(at::kDouble);
    at::Tensor idx = at::tensor(index, at::kLong).reshape({out_len, taps});
    at::Tensor wt = at::tensor(weight, at::kDouble).reshape({out_len, taps}).to(xf.scalar_type());
    std::vector<int64_t> wshape(x.dim(), 1);
    wshape[axis] = out_len;
    for (int64_t t = 0; t < taps; ++t) {
      at::Tensor term =
          xf.index_select(axis, idx.select(1, t).contiguous()) * wt.select(1, t).reshape(wshape);
      y = t == 0 ? term : y + term;
    }
    if (y.scalar_type() != x.scalar_type()) y = y.to(x.scalar_type());
  }
  if (!outside.empty()) y = y.index_fill(axis, at::tensor(outside, at::kLong), a.extrapolation);
  return y;
}

/// The forms PyTorch exports for nn.Upsample / F.interpolate on NCHW maps, run on ATen's
/// upsampling kernels (one pass over the output instead of one per axis and tap); nullopt for
/// anything else. Linear: half_pixel, pytorch_half_pixel (output dims > 1) and align_corners where
/// the resized length L * s is the integer output size (ONNX's reference uses the real product).
/// Nearest: asymmetric with floor, at power-of-two upscales, where ATen's float index arithmetic
/// is exact.
std::optional<at::Tensor> aten_resize(const ResizeAttrs& a, const at::Tensor& x,
                                      const std::vector<double>& scales,
                                      const std::vector<int64_t>& out, bool from_scales) {
  if (x.dim() != 4 || !at::isFloatingType(x.scalar_type()) || a.exclude_outside) return {};
  if (out[0] != x.size(0) || out[1] != x.size(1) || scales[0] != 1 || scales[1] != 1) return {};
  const std::vector<int64_t> size{out[2], out[3]};
  // ATen takes the user's scale factor (output / input) or, without one, derives input / output.
  c10::optional<double> sh, sw;
  if (from_scales) {
    sh = scales[2];
    sw = scales[3];
  }
  if (a.mode == "linear") {
    if (a.coord == "half_pixel" ||
        (a.coord == "pytorch_half_pixel" && out[2] > 1 && out[3] > 1))
      return at::upsample_bilinear2d(x, size, /*align_corners=*/false, sh, sw);
    auto real_len_is_size = [&](int d) {
      return scales[d] * static_cast<double>(x.size(d)) == static_cast<double>(out[d]);
    };
    if (a.coord == "align_corners" && real_len_is_size(2) && real_len_is_size(3))
      return at::upsample_bilinear2d(x, size, /*align_corners=*/true, c10::nullopt, c10::nullopt);
    return {};
  }
  if (a.mode == "nearest" && a.coord == "asymmetric" && a.nearest == "floor") {
    for (int d = 2; d < 4; ++d) {
      if (out[d] % x.size(d) != 0) return {};
      const int64_t k = out[d] / x.size(d);
      if ((k & (k - 1)) != 0 || scales[d] != static_cast<double>(k)) return {};
    }
    return at::upsample_nearest2d(x, size, sh, sw);
  }
  return {};
}

void resize(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  const Node& n = c.node;
  ResizeAttrs a;
  a.mode = n.s("mode", "nearest");
  a.coord = n.s("coordinate_transformation_mode", "half_pixel");
  a.nearest = n.s("nearest_mode", "round_prefer_floor");
  a.cubic_a = n.f("cubic_coeff_a", -0.75f);
  a.extrapolation = n.f("extrapolation_value", 0.f);
  a.exclude_outside = n.i("exclude_outside", 0) != 0;
  const int64_t r = x.dim();
  // Inputs: X, roi, scales, sizes; roi and scales may be absent or empty.
  const bool has_scales = c.has(2) && c.in[2].numel() > 0,
             has_sizes = c.has(3) && c.in[3].numel() > 0;
  SLIM_CHECK(has_scales != has_sizes, n.label(), ": exactly one of scales and sizes must be given");
  std::vector<double> scales(r, 1.0);
  std::vector<int64_t> out(r);
  if (has_scales) {
    scales = to_double_vector(c.in[2]);
    SLIM_CHECK(static_cast<int64_t>(scales.size()) == r, n.label(), ": scales has ", scales.size(),
               " values for rank ", r);
    for (int64_t d = 0; d < r; ++d) {
      SLIM_CHECK(scales[d] > 0, n.label(), ": scales must be positive, got ", scales[d],
                 " for axis ", d);
      out[d] = static_cast<int64_t>(std::floor(scales[d] * static_cast<double>(x.size(d))));
      SLIM_CHECK(out[d] > 0, n.label(), ": axis ", d, " would resize to ", out[d], " elements");
    }
  } else {
    out = to_int_vector(c.in[3]);
    SLIM_CHECK(static_cast<int64_t>(out.size()) == r, n.label(), ": sizes has ", out.size(),
               " values for rank ", r);
    for (int64_t d = 0; d < r; ++d) {
      SLIM_CHECK(out[d] > 0, n.label(), ": sizes must be positive, got ", shape_to_string(out));
      scales[d] = static_cast<double>(out[d]) / static_cast<double>(x.size(d));
    }
  }
  std::vector<double> roi;
  if (a.coord == "tf_crop_and_resize") {
    SLIM_CHECK(c.has(1) && c.in[1].numel() == 2 * r, n.label(),
               ": tf_crop_and_resize needs roi with ", 2 * r, " values (starts, then ends)");
    roi = to_double_vector(c.in[1]);
  }
  if (auto fast = aten_resize(a, x, scales, out, has_scales)) {
    c.out[0] = *fast;
    return;
  }
  at::Tensor y = x;
  for (int64_t d = r - 1; d >= 0; --d) {
    // Scale 1 maps every index to itself, except in the two modes that shift or crop.
    const bool identity = a.coord != "tf_crop_and_resize" && a.coord != "tf_half_pixel_for_nn" &&
                          scales[d] == 1.0 && out[d] == x.size(d);
    if (identity) continue;
    y = resize_axis(n, a, y, d, out[d], scales[d], roi.empty() ? 0 : roi[d],
                    roi.empty() ? 1 : roi[d + r]);
  }
  c.out[0] = y;
}

}  // namespace

const std::vector<KernelEntry>& resize_kernels() {
  static const std::vector<KernelEntry> k = {{"Resize", resize}};
  return k;
}

}  // namespace slim
