#include "batch_norm_inference.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cfloat>
#include <cmath>

namespace slim {

bool BatchNormInference::supports(const PostOp& op) {
  return op.kind == PostOp::Kind::kRelu || op.kind == PostOp::Kind::kLeakyRelu ||
         op.kind == PostOp::Kind::kClip;
}

bool BatchNormInference::run(KernelContext& c, const std::vector<PostOp>& post) {
  if (c.training || c.node.i("training_mode", 0) != 0 || c.in.size() < 5) return false;
  for (size_t i = 0; i < 5; ++i)
    if (!c.has(i) || c.in[i].scalar_type() != at::kFloat || !c.in[i].device().is_cpu())
      return false;
  const at::Tensor& x = c.in[0];
  if (x.dim() != 4 || x.numel() == 0) return false;
  const int64_t ch = x.size(1);
  for (size_t i = 1; i < 5; ++i)
    if (c.in[i].numel() != ch) return false;
  if (at::GradMode::is_enabled())
    for (size_t i = 0; i < 5; ++i)
      if (c.in[i].requires_grad()) return false;
  const bool nhwc = !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
  if (!nhwc && !x.is_contiguous()) return false;
  for (const PostOp& op : post)
    if (!supports(op)) return false;

  // Recomputed on every call (one pass over C values): training updates the running statistics
  // in place without moving their version counters, so no stamp would notice.
  {
    const float eps = c.node.f("epsilon", 1e-5f);
    at::Tensor gamma = c.in[1].contiguous(), beta = c.in[2].contiguous(),
               mean = c.in[3].contiguous(), var = c.in[4].contiguous();
    const float *g = gamma.data_ptr<float>(), *b = beta.data_ptr<float>(),
                *m = mean.data_ptr<float>(), *v = var.data_ptr<float>();
    scale_.resize(ch);
    shift_.resize(ch);
    for (int64_t k = 0; k < ch; ++k) {
      const float invstd = 1.f / std::sqrt(v[k] + eps);
      scale_[k] = invstd * g[k];
      shift_[k] = b[k] - m[k] * scale_[k];
    }
  }
  // The activations after it as one clamp with a slope below zero (Relu: 0; LeakyRelu: alpha).
  float lo = -FLT_MAX, hi = FLT_MAX, slope = 1.f;
  for (const PostOp& op : post) {
    if (op.kind == PostOp::Kind::kClip) {
      lo = std::max(lo, op.alpha);
      hi = std::min(hi, op.beta);
    } else if (slope == 1.f && lo == -FLT_MAX && hi == FLT_MAX) {
      slope = op.kind == PostOp::Kind::kRelu ? 0.f : op.alpha;
    } else {
      return false;  // an activation after a clamp: not one clamp
    }
  }
  // One loop per activation, each simple enough for the compiler to vectorize.
  enum class Act { kNone, kRelu, kClamp, kAny } kind = Act::kAny;
  if (slope == 1.f && lo == -FLT_MAX && hi == FLT_MAX) kind = Act::kNone;
  if (slope == 0.f && lo == -FLT_MAX && hi == FLT_MAX) kind = Act::kRelu;
  if (slope == 1.f && (lo != -FLT_MAX || hi != FLT_MAX)) kind = Act::kClamp;
  // out[k] = act(in[k] * a[k * as] + b[k * as]) for k < n: as = 1 per channel, 0 one scale.
  auto apply = [=](const float* __restrict in, float* __restrict out, const float* __restrict a,
                   const float* __restrict b, int64_t n, int64_t as) {
    switch (kind) {
      case Act::kNone:
        for (int64_t k = 0; k < n; ++k) out[k] = in[k] * a[k * as] + b[k * as];
        break;
      case Act::kRelu:
        for (int64_t k = 0; k < n; ++k) out[k] = std::max(in[k] * a[k * as] + b[k * as], 0.f);
        break;
      case Act::kClamp:
        for (int64_t k = 0; k < n; ++k)
          out[k] = std::min(std::max(in[k] * a[k * as] + b[k * as], lo), hi);
        break;
      case Act::kAny:
        for (int64_t k = 0; k < n; ++k) {
          float v = in[k] * a[k * as] + b[k * as];
          v = v < 0 ? v * slope : v;
          out[k] = std::min(std::max(v, lo), hi);
        }
        break;
    }
  };

  at::Tensor y = c.can_overwrite(0) ? c.in[0] : at::empty_like(x);
  const float* src = x.data_ptr<float>();
  float* dst = y.data_ptr<float>();
  const float *s = scale_.data(), *t = shift_.data();
  if (nhwc) {
    const int64_t rows = x.numel() / ch;
    at::parallel_for(0, rows, std::max<int64_t>(1, 32768 / ch), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) apply(src + r * ch, dst + r * ch, s, t, ch, 1);
    });
  } else {
    const int64_t plane = x.size(2) * x.size(3), planes = x.size(0) * ch;
    at::parallel_for(0, planes, std::max<int64_t>(1, 32768 / plane), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p)
        apply(src + p * plane, dst + p * plane, s + p % ch, t + p % ch, plane, 0);
    });
  }
  c.out[0] = y;
  return true;
}

}  // namespace slim
