// Tensor-manipulation kernels: shapes, layout, indexing, constants.
#include <algorithm>
#include <cmath>
#include <limits>

#include "slim/exec/kernel.h"

namespace slim {

std::vector<int64_t> to_int_vector(const at::Tensor& t) {
  at::Tensor c = t.to(at::kCPU).to(at::kLong).contiguous().reshape({-1});
  const int64_t* p = c.data_ptr<int64_t>();
  return std::vector<int64_t>(p, p + c.numel());
}

std::vector<int64_t> shape_op_dims(const Node& n, const std::vector<int64_t>& dims) {
  const int64_t r = static_cast<int64_t>(dims.size());
  int64_t start = n.i("start", 0), end = n.i("end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, start, r);
  return std::vector<int64_t>(dims.begin() + start, dims.begin() + end);
}

int64_t normalize_axis(const Node& n, int64_t axis, int64_t rank) {
  SLIM_CHECK(axis >= -rank && axis < std::max<int64_t>(rank, 1), n.label(), ": axis ", axis,
             " is out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

namespace {

/// Axes from the attribute (older opsets) or from input #1 (opset 13+ for Squeeze/Unsqueeze).
std::optional<std::vector<int64_t>> axes_of(const KernelContext& c, size_t input_idx) {
  if (c.has(input_idx)) return to_int_vector(c.in[input_idx]);
  if (c.node.has("axes")) return c.node.ints("axes");
  return std::nullopt;
}

void identity(KernelContext& c) { c.out[0] = c.x(0); }

void constant(KernelContext& c) {
  const Node& n = c.node;
  if (n.has("value")) {
    c.out[0] = n.t("value");
  } else if (n.has("value_float")) {
    c.out[0] = at::scalar_tensor(n.f("value_float", 0), at::kFloat);
  } else if (n.has("value_floats")) {
    auto v = n.floats("value_floats");
    c.out[0] = at::tensor(at::ArrayRef<float>(v), at::kFloat);
  } else if (n.has("value_int")) {
    c.out[0] = at::scalar_tensor(n.i("value_int"), at::kLong);
  } else if (n.has("value_ints")) {
    auto v = n.ints("value_ints");
    c.out[0] = at::tensor(at::ArrayRef<int64_t>(v), at::kLong);
  } else {
    SLIM_FAIL(n.label(), ": only value, value_float(s) and value_int(s) are supported");
  }
}

void constant_of_shape(KernelContext& c) {
  auto shape = to_int_vector(c.x(0));
  at::Tensor v = c.node.has("value") ? c.node.t("value") : at::zeros({1}, at::kFloat);
  c.out[0] = at::full(shape, v.reshape({-1})[0].item(), v.options());
}

void cast(KernelContext& c) {
  c.out[0] = c.x(0).to(dtype_from_onnx(c.node.i("to")));
}

void shape(KernelContext& c) {
  auto dims = shape_op_dims(c.node, c.x(0).sizes().vec());
  c.out[0] = at::tensor(at::ArrayRef<int64_t>(dims), at::kLong);
}

void concat(KernelContext& c) {
  std::vector<at::Tensor> parts;
  for (size_t i = 0; i < c.in.size(); ++i) parts.push_back(c.x(i));
  SLIM_CHECK(!parts.empty(), c.node.label(), ": needs at least one input");
  int64_t axis = normalize_axis(c.node, c.node.i("axis"), parts[0].dim());
  c.out[0] = at::cat(parts, axis);
}

void split(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  int64_t axis = normalize_axis(c.node, c.node.i("axis", 0), x.dim());
  std::vector<int64_t> sizes;
  if (c.opset >= 13 && c.has(1))
    sizes = to_int_vector(c.in[1]);
  else if (c.node.has("split"))
    sizes = c.node.ints("split");
  const int64_t n = static_cast<int64_t>(c.out.size());
  if (sizes.empty()) {
    SLIM_CHECK(x.size(axis) % n == 0, c.node.label(), ": dim ", x.size(axis),
               " cannot be split evenly into ", n, " outputs");
    sizes.assign(n, x.size(axis) / n);
  }
  SLIM_CHECK(static_cast<int64_t>(sizes.size()) == n, c.node.label(), ": split has ",
             sizes.size(), " sizes for ", n, " outputs");
  auto parts = at::split_with_sizes(x, sizes, axis);
  for (int64_t k = 0; k < n; ++k) c.out[k] = parts[k];
}

void flatten(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  int64_t r = x.dim();
  int64_t axis = c.node.i("axis", 1);
  SLIM_CHECK(axis >= -r && axis <= r, c.node.label(), ": axis ", axis,
             " is out of range for rank ", r);
  if (axis < 0) axis += r;
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.size(d);
  int64_t inner = 1;
  for (int64_t d = axis; d < r; ++d) inner *= x.size(d);
  c.out[0] = x.reshape({outer, inner});
}

void reshape(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  auto shape = to_int_vector(c.x(1));
  bool allowzero = c.node.i("allowzero", 0) != 0;
  int minus_one = 0;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0 && !allowzero) {
      SLIM_CHECK(static_cast<int64_t>(d) < x.dim(), c.node.label(), ": shape[", d,
                 "] = 0 copies a dim the input (", shape_to_string(x.sizes().vec()),
                 ") does not have");
      shape[d] = x.size(d);
    }
    SLIM_CHECK(shape[d] >= -1, c.node.label(), ": invalid target dim ", shape[d]);
    minus_one += shape[d] == -1;
  }
  SLIM_CHECK(minus_one <= 1, c.node.label(), ": target shape has more than one -1");
  c.out[0] = x.reshape(shape);
}

void transpose(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  std::vector<int64_t> perm;
  for (int64_t d = x.dim() - 1; d >= 0; --d) perm.push_back(d);
  perm = c.node.ints("perm", perm);
  SLIM_CHECK(static_cast<int64_t>(perm.size()) == x.dim(), c.node.label(), ": perm has ",
             perm.size(), " entries for rank ", x.dim());
  c.out[0] = x.permute(perm);
}

void squeeze(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  auto axes = axes_of(c, 1);
  if (!axes) {
    c.out[0] = x.squeeze();
    return;
  }
  std::vector<int64_t> keep;
  std::vector<bool> drop(x.dim(), false);
  for (int64_t a : *axes) {
    a = normalize_axis(c.node, a, x.dim());
    SLIM_CHECK(x.size(a) == 1, c.node.label(), ": cannot squeeze axis ", a, " of size ",
               x.size(a));
    drop[a] = true;
  }
  for (int64_t d = 0; d < x.dim(); ++d)
    if (!drop[d]) keep.push_back(x.size(d));
  c.out[0] = x.reshape(keep);
}

void unsqueeze(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  auto axes = axes_of(c, 1);
  SLIM_CHECK(axes.has_value(), c.node.label(), ": axes are required");
  const int64_t out_rank = x.dim() + static_cast<int64_t>(axes->size());
  std::vector<bool> is_new(out_rank, false);
  for (int64_t a : *axes) {
    a = normalize_axis(c.node, a, out_rank);
    SLIM_CHECK(!is_new[a], c.node.label(), ": axis ", a, " is repeated");
    is_new[a] = true;
  }
  std::vector<int64_t> shape;
  int64_t src = 0;
  for (int64_t d = 0; d < out_rank; ++d) shape.push_back(is_new[d] ? 1 : x.size(src++));
  c.out[0] = x.reshape(shape);
}

void pad(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  std::vector<int64_t> pads = c.opset >= 11 ? to_int_vector(c.x(1)) : c.node.ints("pads");
  const int64_t r = x.dim();
  std::vector<int64_t> axes;
  if (c.has(3)) {
    for (int64_t a : to_int_vector(c.in[3])) axes.push_back(normalize_axis(c.node, a, r));
  } else {
    for (int64_t d = 0; d < r; ++d) axes.push_back(d);
  }
  const int64_t na = static_cast<int64_t>(axes.size());
  SLIM_CHECK(static_cast<int64_t>(pads.size()) == 2 * na, c.node.label(), ": pads has ",
             pads.size(), " values, expected ", 2 * na);
  std::vector<int64_t> begin(r, 0), end(r, 0);
  for (int64_t k = 0; k < na; ++k) {
    begin[axes[k]] = pads[k];
    end[axes[k]] = pads[k + na];
  }
  std::string mode = c.node.s("mode", "constant");
  double value = 0.0;
  if (c.opset >= 11 && c.has(2) && c.in[2].numel() > 0)
    value = c.in[2].item<double>();
  else if (c.opset < 11)
    value = c.node.f("value", 0.0f);
  // ATen wants (begin, end) pairs from the last dim backwards, trailing zeros dropped.
  int64_t first = r;
  for (int64_t d = 0; d < r; ++d)
    if (begin[d] || end[d]) {
      first = d;
      break;
    }
  std::vector<int64_t> p;
  for (int64_t d = r - 1; d >= first; --d) {
    p.push_back(begin[d]);
    p.push_back(end[d]);
  }
  if (p.empty()) {
    c.out[0] = x;
    return;
  }
  if (mode == "constant") {
    c.out[0] = at::constant_pad_nd(x, p, value);
    return;
  }
  SLIM_CHECK(mode == "reflect" || mode == "edge", c.node.label(), ": mode '", mode,
             "' is not one of constant, reflect, edge");
  // Gather along each padded dim with source indices: works for every dtype and rank, and for
  // pads longer than the dim (reflect then bounces back and forth, as numpy.pad does), none of
  // which ATen's reflection/replication pads allow.
  at::Tensor y = x;
  for (int64_t d = first; d < r; ++d) {
    if (!begin[d] && !end[d]) continue;
    const int64_t n = x.size(d);
    SLIM_CHECK(n > 0, c.node.label(), ": mode '", mode, "' cannot pad the empty dim ", d);
    at::Tensor idx = at::arange(-begin[d], n + end[d], at::kLong);
    if (mode == "edge" || n == 1) {
      idx = idx.clamp(0, n - 1);
    } else {
      const int64_t period = 2 * (n - 1);
      idx = at::remainder(idx, period);
      idx = at::where(idx >= n, period - idx, idx);
    }
    y = y.index_select(d, idx);
  }
  c.out[0] = y;
}

void gather(KernelContext& c) {
  const at::Tensor& data = c.x(0);
  at::Tensor idx = c.x(1).to(at::kLong);
  int64_t axis = normalize_axis(c.node, c.node.i("axis", 0), data.dim());
  const int64_t n = data.size(axis);
  if (idx.numel() > 0) {
    int64_t lo = idx.min().item<int64_t>(), hi = idx.max().item<int64_t>();
    SLIM_CHECK(lo >= -n && hi < n, c.node.label(), ": indices must be in [", -n, ", ", n - 1,
               "], got [", lo, ", ", hi, "]");
  }
  idx = at::where(idx < 0, idx + n, idx);
  std::vector<int64_t> shape(data.sizes().begin(), data.sizes().begin() + axis);
  for (auto s : idx.sizes()) shape.push_back(s);
  for (int64_t d = axis + 1; d < data.dim(); ++d) shape.push_back(data.size(d));
  c.out[0] = data.index_select(axis, idx.reshape({-1})).reshape(shape);
}

void slice(KernelContext& c) {
  at::Tensor x = c.x(0);
  auto starts = to_int_vector(c.x(1));
  auto ends = to_int_vector(c.x(2));
  SLIM_CHECK(starts.size() == ends.size(), c.node.label(), ": starts has ", starts.size(),
             " values but ends has ", ends.size());
  std::vector<int64_t> axes, steps;
  if (c.has(3)) {
    axes = to_int_vector(c.in[3]);
  } else {
    for (size_t k = 0; k < starts.size(); ++k) axes.push_back(static_cast<int64_t>(k));
  }
  steps = c.has(4) ? to_int_vector(c.in[4]) : std::vector<int64_t>(starts.size(), 1);
  SLIM_CHECK(axes.size() == starts.size() && steps.size() == starts.size(), c.node.label(),
             ": starts, ends, axes and steps must have the same length");
  for (size_t k = 0; k < starts.size(); ++k) {
    int64_t axis = normalize_axis(c.node, axes[k], x.dim());
    int64_t dim = x.size(axis), step = steps[k];
    SLIM_CHECK(step != 0, c.node.label(), ": step must not be 0");
    int64_t s = starts[k], e = ends[k];
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (step > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
      x = x.slice(axis, s, std::max(s, e), step);
    } else {
      s = std::clamp<int64_t>(s, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
      if (s <= e) {
        x = x.slice(axis, 0, 0);
      } else {
        at::Tensor idx = at::arange(s, e, step, at::kLong);
        x = x.index_select(axis, idx);
      }
    }
  }
  c.out[0] = x;
}

void expand(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  auto shape = to_int_vector(c.x(1));
  // ONNX Expand broadcasts both ways: the result has the broadcast of both shapes.
  std::vector<int64_t> out = at::infer_size(x.sizes(), shape);
  c.out[0] = x.expand(out);
}

void tile(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  auto repeats = to_int_vector(c.x(1));
  SLIM_CHECK(static_cast<int64_t>(repeats.size()) == x.dim(), c.node.label(), ": repeats has ",
             repeats.size(), " values for an input of rank ", x.dim());
  for (auto r : repeats)
    SLIM_CHECK(r >= 0, c.node.label(), ": repeats must not be negative, got ",
               shape_to_string(repeats));
  c.out[0] = x.repeat(repeats);
}

void range(KernelContext& c) {
  const at::Tensor &start = c.x(0), &limit = c.x(1), &delta = c.x(2);
  for (const auto* t : {&start, &limit, &delta})
    SLIM_CHECK(t->numel() == 1 && t->scalar_type() == start.scalar_type(), c.node.label(),
               ": start, limit and delta must be scalars of one type");
  const auto type = start.scalar_type();
  if (at::isFloatingType(type)) {
    const double s = start.item<double>(), l = limit.item<double>(), d = delta.item<double>();
    SLIM_CHECK(d != 0, c.node.label(), ": delta must not be 0");
    const auto n = static_cast<int64_t>(std::max(std::ceil((l - s) / d), 0.0));
    // start + i * delta in the output type, as ONNX's reference loop accumulates.
    c.out[0] =
        at::arange(n, at::TensorOptions().dtype(type)) * delta.reshape({}) + start.reshape({});
  } else {
    const int64_t s = start.item<int64_t>(), l = limit.item<int64_t>(), d = delta.item<int64_t>();
    SLIM_CHECK(d != 0, c.node.label(), ": delta must not be 0");
    const int64_t n = std::max<int64_t>((l - s + (d > 0 ? d - 1 : d + 1)) / d, 0);
    c.out[0] = (at::arange(n, at::kLong) * d + s).to(type);
  }
}

int64_t block_size(const KernelContext& c) {
  SLIM_CHECK(c.node.has("blocksize"), c.node.label(), ": attribute 'blocksize' is required");
  const int64_t b = c.node.i("blocksize");
  SLIM_CHECK(b > 0, c.node.label(), ": blocksize must be positive, got ", b);
  return b;
}

void depth_to_space(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  const int64_t b = block_size(c);
  SLIM_CHECK(x.dim() == 4 && x.size(1) % (b * b) == 0, c.node.label(),
             ": input must be N, C, H, W with C divisible by blocksize^2 = ", b * b, ", got ",
             shape_to_string(x.sizes().vec()));
  const int64_t n = x.size(0), ch = x.size(1) / (b * b), h = x.size(2), w = x.size(3);
  const std::string mode = c.node.s("mode", "DCR");
  at::Tensor y;
  if (mode == "DCR") {  // depth, column, row: channel = (by * b + bx) * C' + c
    y = x.reshape({n, b, b, ch, h, w}).permute({0, 3, 4, 1, 5, 2});
  } else {
    SLIM_CHECK(mode == "CRD", c.node.label(), ": mode '", mode, "' is not DCR or CRD");
    y = x.reshape({n, ch, b, b, h, w}).permute({0, 1, 4, 2, 5, 3});
  }
  c.out[0] = y.reshape({n, ch, h * b, w * b});
}

void space_to_depth(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  const int64_t b = block_size(c);
  SLIM_CHECK(x.dim() == 4 && x.size(2) % b == 0 && x.size(3) % b == 0, c.node.label(),
             ": input must be N, C, H, W with H and W divisible by blocksize ", b, ", got ",
             shape_to_string(x.sizes().vec()));
  const int64_t n = x.size(0), ch = x.size(1), h = x.size(2) / b, w = x.size(3) / b;
  c.out[0] =
      x.reshape({n, ch, h, b, w, b}).permute({0, 3, 5, 1, 2, 4}).reshape({n, ch * b * b, h, w});
}

void size(KernelContext& c) { c.out[0] = at::scalar_tensor(c.x(0).numel(), at::kLong); }

}  // namespace

const std::vector<KernelEntry>& tensor_kernels() {
  static const std::vector<KernelEntry> k = {
      {"Identity", identity},
      {"Constant", constant},
      {"ConstantOfShape", constant_of_shape},
      {"Cast", cast},
      {"Shape", shape},
      {"Concat", concat},
      {"Split", split},
      {"Flatten", flatten},
      {"Reshape", reshape},
      {"Transpose", transpose},
      {"Squeeze", squeeze},
      {"Unsqueeze", unsqueeze},
      {"Pad", pad},
      {"Gather", gather},
      {"Slice", slice},
      {"Expand", expand},
      {"Tile", tile},
      {"Range", range},
      {"DepthToSpace", depth_to_space},
      {"SpaceToDepth", space_to_depth},
      {"Size", size},
  };
  return k;
}

}  // namespace slim
