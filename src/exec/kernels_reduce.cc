// Reductions (ReduceMean, ReduceSum, ReduceMax, ...), ArgMax/ArgMin, TopK and CumSum.
#include <algorithm>
#include <optional>

#include "slim/exec/kernel.h"

namespace slim {

namespace {

/// The axes a Reduce* node reduces over, sorted and non-negative; nullopt when the node is a
/// no-op (empty axes with noop_with_empty_axes = 1). Axes come from the attribute, or from
/// input #1 (ReduceSum from opset 13, the others from opset 18; accepted whenever present).
std::optional<std::vector<int64_t>> reduce_axes(const KernelContext& c, const at::Tensor& x) {
  std::vector<int64_t> axes = c.node.ints("axes");
  if (c.has(1)) axes = to_int_vector(c.in[1]);
  if (axes.empty()) {
    if (c.node.i("noop_with_empty_axes", 0) != 0) return std::nullopt;
    for (int64_t d = 0; d < x.dim(); ++d) axes.push_back(d);
    return axes;
  }
  const std::vector<int64_t> given = axes;
  for (auto& a : axes) a = normalize_axis(c.node, a, x.dim());
  std::sort(axes.begin(), axes.end());
  SLIM_CHECK(std::adjacent_find(axes.begin(), axes.end()) == axes.end(), c.node.label(), ": axes ",
             shape_to_string(given), " name an axis twice");
  return axes;
}

bool keepdims(const KernelContext& c) { return c.node.i("keepdims", 1) != 0; }

/// Runs `fn(x, axes, keepdims)`; a no-op node passes x through.
template <typename Fn>
void reduce(KernelContext& c, Fn fn) {
  const at::Tensor& x = c.x(0);
  auto axes = reduce_axes(c, x);
  c.out[0] = axes ? fn(x, *axes, keepdims(c)) : x;
}

/// Integer reductions that ATen would promote (mean, norms, logs) are computed in double and
/// cast back, truncating like C as ONNX's reference does.
at::Tensor as_input_type(const at::Tensor& y, const at::Tensor& x) {
  return y.scalar_type() == x.scalar_type() ? y : y.to(x.scalar_type());
}
at::Tensor floating(const at::Tensor& x) {
  return at::isFloatingType(x.scalar_type()) ? x : x.to(at::kDouble);
}

void reduce_mean(KernelContext& c) {
  reduce(c, [&c](const at::Tensor& x, at::IntArrayRef axes, bool keep) {
    if (axes.equals({2, 3}))
      if (at::Tensor y = spatial_mean(c, x, keep); y.defined()) return y;
    return as_input_type(floating(x).mean(axes, keep), x);
  });
}

void reduce_sum(KernelContext& c) {
  reduce(c, [](const at::Tensor& x, at::IntArrayRef axes, bool keep) {
    return x.sum(axes, keep, x.scalar_type());
  });
}

void reduce_sum_square(KernelContext& c) {
  reduce(c, [](const at::Tensor& x, at::IntArrayRef axes, bool keep) {
    return (x * x).sum(axes, keep, x.scalar_type());
  });
}

void reduce_l1(KernelContext& c) {
  reduce(c, [](const at::Tensor& x, at::IntArrayRef axes, bool keep) {
    return at::abs(x).sum(axes, keep, x.scalar_type());
  });
}

void reduce_l2(KernelContext& c) {
  reduce(c, [](const at::Tensor& x, at::IntArrayRef axes, bool keep) {
    at::Tensor f = floating(x);
    return as_input_type(at::sqrt((f * f).sum(axes, keep)), x);
  });
}

void reduce_log_sum(KernelContext& c) {
  reduce(c, [](const at::Tensor& x, at::IntArrayRef axes, bool keep) {
    return as_input_type(at::log(floating(x).sum(axes, keep)), x);
  });
}

void reduce_log_sum_exp(KernelContext& c) {
  reduce(c, [](const at::Tensor& x, at::IntArrayRef axes, bool keep) {
    return as_input_type(at::logsumexp(floating(x), axes, keep), x);
  });
}

void reduce_max(KernelContext& c) {
  reduce(c, [](const at::Tensor& x, at::IntArrayRef axes, bool keep) {
    return at::amax(x, axes, keep);
  });
}

void reduce_min(KernelContext& c) {
  reduce(c, [](const at::Tensor& x, at::IntArrayRef axes, bool keep) {
    return at::amin(x, axes, keep);
  });
}

void reduce_prod(KernelContext& c) {
  reduce(c, [](const at::Tensor& x, at::IntArrayRef axes, bool keep) {
    // ATen's prod takes one dim at a time: go from the last axis so earlier indices stay valid.
    at::Tensor y = x;
    for (auto it = axes.rbegin(); it != axes.rend(); ++it) y = y.prod(*it, keep, x.scalar_type());
    return y;
  });
}

/// ArgMax/ArgMin: int64 indices along `axis`; ties go to the first index, or to the last with
/// select_last_index = 1.
void arg_reduce(KernelContext& c, bool is_max) {
  const at::Tensor& x = c.x(0);
  const int64_t axis = normalize_axis(c.node, c.node.i("axis", 0), x.dim());
  const bool keep = keepdims(c);
  auto arg = [&](const at::Tensor& t) {
    return is_max ? at::argmax(t, axis, keep) : at::argmin(t, axis, keep);
  };
  if (c.node.i("select_last_index", 0) != 0) {
    c.out[0] = (x.size(axis) - 1) - arg(x.flip(axis));
  } else {
    c.out[0] = arg(x);
  }
}
void arg_max(KernelContext& c) { arg_reduce(c, true); }
void arg_min(KernelContext& c) { arg_reduce(c, false); }

void top_k(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  std::vector<int64_t> kv = to_int_vector(c.x(1));
  SLIM_CHECK(kv.size() == 1, c.node.label(), ": K must hold one value, got ", kv.size());
  const int64_t axis = normalize_axis(c.node, c.node.i("axis", -1), x.dim());
  const int64_t k = kv[0];
  SLIM_CHECK(k >= 0 && k <= x.size(axis), c.node.label(), ": K = ", k, " is outside [0, ",
             x.size(axis), "] (the size of axis ", axis, ")");
  const bool largest = c.node.i("largest", 1) != 0;
  // A stable sort keeps equal values in index order, as ONNX asks (the lower index first).
  auto [values, indices] = at::sort(x, /*stable=*/true, axis, /*descending=*/largest);
  c.out[0] = values.narrow(axis, 0, k);
  if (c.out.size() > 1) c.out[1] = indices.narrow(axis, 0, k);
}

void cum_sum(KernelContext& c) {
  const at::Tensor& x = c.x(0);
  std::vector<int64_t> av = to_int_vector(c.x(1));
  SLIM_CHECK(av.size() == 1, c.node.label(), ": axis must hold one value, got ", av.size());
  const int64_t axis = normalize_axis(c.node, av[0], x.dim());
  const bool exclusive = c.node.i("exclusive", 0) != 0, reverse = c.node.i("reverse", 0) != 0;
  at::Tensor t = reverse ? x.flip(axis) : x;
  at::Tensor y = t.cumsum(axis, x.scalar_type());
  if (exclusive && x.size(axis) > 0) {
    // Shift by one: y[i] = sum of t[0..i-1], with 0 first.
    y = at::cat({at::zeros_like(t.narrow(axis, 0, 1)), y.narrow(axis, 0, x.size(axis) - 1)}, axis);
  }
  c.out[0] = reverse ? y.flip(axis) : y;
}

}  // namespace

const std::vector<KernelEntry>& reduce_kernels() {
  static const std::vector<KernelEntry> k = {
      {"ReduceMean", reduce_mean},
      {"ReduceSum", reduce_sum},
      {"ReduceSumSquare", reduce_sum_square},
      {"ReduceL1", reduce_l1},
      {"ReduceL2", reduce_l2},
      {"ReduceLogSum", reduce_log_sum},
      {"ReduceLogSumExp", reduce_log_sum_exp},
      {"ReduceMax", reduce_max},
      {"ReduceMin", reduce_min},
      {"ReduceProd", reduce_prod},
      {"ArgMax", arg_max},
      {"ArgMin", arg_min},
      {"TopK", top_k},
      {"CumSum", cum_sum},
  };
  return k;
}

}  // namespace slim
