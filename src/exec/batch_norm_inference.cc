#include "batch_norm_inference.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <optional>

namespace slim {

bool BatchNormInference::supports(const PostOp& op) {
  return op.kind == PostOp::Kind::kRelu || op.kind == PostOp::Kind::kLeakyRelu ||
         op.kind == PostOp::Kind::kClip;
}

namespace {

/// The activations after the affine map as one clamp with a slope below zero.
struct Activation {
  enum class Kind { kNone, kRelu, kClamp, kAny } kind = Kind::kAny;
  float lo = -FLT_MAX, hi = FLT_MAX, slope = 1.f;

  /// False when `post` is not one clamp (an activation after a clamp).
  bool set(const std::vector<PostOp>& post) {
    for (const PostOp& op : post) {
      if (op.kind == PostOp::Kind::kClip) {
        lo = std::max(lo, op.alpha);
        hi = std::min(hi, op.beta);
      } else if (slope == 1.f && lo == -FLT_MAX && hi == FLT_MAX) {
        slope = op.kind == PostOp::Kind::kRelu ? 0.f : op.alpha;
      } else {
        return false;
      }
    }
    if (slope == 1.f && lo == -FLT_MAX && hi == FLT_MAX) kind = Kind::kNone;
    if (slope == 0.f && lo == -FLT_MAX && hi == FLT_MAX) kind = Kind::kRelu;
    if (slope == 1.f && (lo != -FLT_MAX || hi != FLT_MAX)) kind = Kind::kClamp;
    return true;
  }

  /// out[k] = act(in[k] * a[k * as] + b[k * as]) for k < n: as = 1 per channel, 0 one scale.
  /// One loop per activation, each simple enough for the compiler to vectorize.
  void apply(const float* __restrict in, float* __restrict out, const float* __restrict a,
             const float* __restrict b, int64_t n, int64_t as) const {
    switch (kind) {
      case Kind::kNone:
        for (int64_t k = 0; k < n; ++k) out[k] = in[k] * a[k * as] + b[k * as];
        break;
      case Kind::kRelu:
        for (int64_t k = 0; k < n; ++k) out[k] = std::max(in[k] * a[k * as] + b[k * as], 0.f);
        break;
      case Kind::kClamp:
        for (int64_t k = 0; k < n; ++k)
          out[k] = std::min(std::max(in[k] * a[k * as] + b[k * as], lo), hi);
        break;
      case Kind::kAny:
        for (int64_t k = 0; k < n; ++k) {
          float v = in[k] * a[k * as] + b[k * as];
          v = v < 0 ? v * slope : v;
          out[k] = std::min(std::max(v, lo), hi);
        }
        break;
    }
  }
};

/// NHWC (true), NCHW (false) or neither (nullopt) for a 4-D float CPU tensor.
std::optional<bool> nhwc_layout(const at::Tensor& x) {
  if (!x.defined() || x.scalar_type() != at::kFloat || !x.device().is_cpu() || x.dim() != 4)
    return std::nullopt;
  if (x.is_contiguous()) return false;
  if (x.is_contiguous(at::MemoryFormat::ChannelsLast)) return true;
  return std::nullopt;
}

}  // namespace

bool BatchNormInference::prepare(KernelContext& c, int64_t ch, const std::vector<PostOp>& post) {
  if (c.training || c.node.i("training_mode", 0) != 0 || c.in.size() < 5) return false;
  for (size_t i = 1; i < 5; ++i)
    if (!c.has(i) || c.in[i].scalar_type() != at::kFloat || !c.in[i].device().is_cpu() ||
        c.in[i].numel() != ch)
      return false;
  if (at::GradMode::is_enabled())
    for (size_t i = 0; i < 5; ++i)
      if (c.has(i) && c.in[i].requires_grad()) return false;
  for (const PostOp& op : post)
    if (!supports(op)) return false;
  // Recomputed on every call (one pass over C values): training updates the running statistics
  // in place without moving their version counters, so no stamp would notice.
  const float eps = c.node.f("epsilon", 1e-5f);
  at::Tensor gamma = c.in[1].contiguous(), beta = c.in[2].contiguous(), mean = c.in[3].contiguous(),
             var = c.in[4].contiguous();
  const float *g = gamma.data_ptr<float>(), *b = beta.data_ptr<float>(),
              *m = mean.data_ptr<float>(), *v = var.data_ptr<float>();
  scale_.resize(ch);
  shift_.resize(ch);
  for (int64_t k = 0; k < ch; ++k) {
    const float invstd = 1.f / std::sqrt(v[k] + eps);
    scale_[k] = invstd * g[k];
    shift_[k] = b[k] - m[k] * scale_[k];
  }
  return true;
}

bool BatchNormInference::run(KernelContext& c, const std::vector<PostOp>& post) {
  if (c.in.empty()) return false;
  const at::Tensor& x = c.in[0];
  const std::optional<bool> nhwc = nhwc_layout(x);
  if (!nhwc || x.numel() == 0) return false;
  const int64_t ch = x.size(1);
  Activation act;
  if (!act.set(post) || !prepare(c, ch, post)) return false;
  at::Tensor y = c.can_overwrite(0) ? c.in[0] : at::empty_like(x);
  const float* src = x.data_ptr<float>();
  float* dst = y.data_ptr<float>();
  const float *s = scale_.data(), *t = shift_.data();
  if (*nhwc) {
    const int64_t rows = x.numel() / ch;
    at::parallel_for(0, rows, std::max<int64_t>(1, 32768 / ch), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) act.apply(src + r * ch, dst + r * ch, s, t, ch, 1);
    });
  } else {
    const int64_t plane = x.size(2) * x.size(3), planes = x.size(0) * ch;
    at::parallel_for(0, planes, std::max<int64_t>(1, 32768 / plane), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p)
        act.apply(src + p * plane, dst + p * plane, s + p % ch, t + p % ch, plane, 0);
    });
  }
  c.out[0] = y;
  return true;
}

bool BatchNormInference::run_concat(KernelContext& c, const std::vector<at::Tensor>& parts,
                                    const std::vector<PostOp>& post) {
  if (parts.empty()) return false;
  const std::optional<bool> nhwc = nhwc_layout(parts[0]);
  if (!nhwc) return false;
  const int64_t n = parts[0].size(0), h = parts[0].size(2), w = parts[0].size(3);
  int64_t ch = 0;
  for (const at::Tensor& p : parts) {
    if (nhwc_layout(p) != nhwc || p.size(0) != n || p.size(2) != h || p.size(3) != w) return false;
    ch += p.size(1);
  }
  if (n * ch * h * w == 0) return false;
  if (at::GradMode::is_enabled())
    for (const at::Tensor& p : parts)
      if (p.requires_grad()) return false;
  Activation act;
  if (!act.set(post) || !prepare(c, ch, post)) return false;
  const auto fmt = *nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  at::Tensor y = at::empty({n, ch, h, w}, parts[0].options().memory_format(fmt));
  float* dst = y.data_ptr<float>();
  const float *s = scale_.data(), *t = shift_.data();
  if (*nhwc) {
    // Each pixel's channels, part by part, into their place in the output row.
    const int64_t rows = n * h * w;
    at::parallel_for(0, rows, std::max<int64_t>(1, 32768 / ch), [&](int64_t r0, int64_t r1) {
      int64_t offset = 0;
      for (const at::Tensor& p : parts) {
        const int64_t pc = p.size(1);
        const float* src = p.data_ptr<float>();
        for (int64_t r = r0; r < r1; ++r)
          act.apply(src + r * pc, dst + r * ch + offset, s + offset, t + offset, pc, 1);
        offset += pc;
      }
    });
  } else {
    // Each (batch, channel) plane from its part.
    const int64_t plane = h * w;
    std::vector<std::pair<const float*, int64_t>> source(static_cast<size_t>(ch));  // part, its C
    int64_t k = 0;
    for (const at::Tensor& p : parts)
      for (int64_t j = 0; j < p.size(1); ++j)
        source[k++] = {p.data_ptr<float>() + j * plane, p.size(1)};
    at::parallel_for(0, n * ch, std::max<int64_t>(1, 32768 / plane), [&](int64_t p0, int64_t p1) {
      for (int64_t q = p0; q < p1; ++q) {
        const int64_t b = q / ch, k = q % ch;
        const auto [src, pc] = source[k];
        act.apply(src + b * pc * plane, dst + q * plane, s + k, t + k, plane, 0);
      }
    });
  }
  c.out[0] = y;
  return true;
}

}  // namespace slim
