// The entropy (KL) calibration of TensorRT, in the variant PaddleSlim implements (cuts from the
// middle of the histogram to its end, tail folded into the last kept bin).
#include <cmath>

#include "slim/ir/error.h"
#include "slim/quant/calibrate.h"

namespace slim {

namespace {

/// KL(P || Q) for unnormalised P and Q; bins where P is 0 contribute nothing.
double kl_divergence(const std::vector<double>& p, const std::vector<double>& q) {
  double psum = 0, qsum = 0;
  for (double v : p) psum += v;
  for (double v : q) qsum += v;
  if (psum <= 0 || qsum <= 0) return INFINITY;
  double kl = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0) continue;
    if (q[i] <= 0) return INFINITY;
    kl += p[i] * std::log((p[i] / psum) / (q[i] / qsum));
  }
  return kl / psum;
}

}  // namespace

double threshold_kl(const std::vector<double>& hist, double bin_width, int64_t levels) {
  const int64_t bins = static_cast<int64_t>(hist.size());
  SLIM_CHECK(levels >= 1 && bins > 2 * levels, "kl calibration needs more histogram bins (",
             bins, ") than twice the quantization levels (", levels, ")");
  int64_t start = (bins - 1) / 2;
  double best = INFINITY;
  int64_t best_i = 0;
  bool any = false;
  std::vector<double> p, q;
  for (int64_t i = start; i < bins; ++i) {
    if (hist[i - 1] == 0) continue;
    p.assign(hist.begin(), hist.begin() + i);
    double tail = 0;
    for (int64_t k = i; k < bins; ++k) tail += hist[k];
    p[i - 1] += tail;
    // Merge the first i bins (before folding) into `levels` groups; the last group takes the
    // remainder. Spread each group's count evenly over its bins that are non-zero in P.
    const int64_t per = i / levels;
    q.assign(i, 0.0);
    for (int64_t g = 0; g < levels; ++g) {
      int64_t a = g * per, b = g == levels - 1 ? i : (g + 1) * per;
      double sum = 0;
      int64_t nonzero = 0;
      for (int64_t k = a; k < b; ++k) {
        sum += hist[k];
        if (p[k] != 0) ++nonzero;
      }
      if (nonzero == 0) continue;
      for (int64_t k = a; k < b; ++k) q[k] = p[k] != 0 ? sum / nonzero : 0.0;
    }
    double kl = kl_divergence(p, q);
    if (!any || kl < best) {
      any = true;
      best = kl;
      best_i = i;
    }
  }
  if (!any) {
    // No cut had mass at its edge: the distribution sits below the middle; keep the last
    // non-empty bin at or below it.
    best_i = start;
    while (best_i > 0 && hist[best_i] == 0) --best_i;
  }
  return (static_cast<double>(best_i) + 0.5) * bin_width;
}

}  // namespace slim
