#pragma once
/// Post-training calibration: run float batches through a model and choose a threshold for each
/// activation that a quantized op reads (PaddleSlim's PostTrainingQuantization algorithms).
#include <memory>
#include <string>
#include <vector>

#include "slim/data/dataset.h"
#include "slim/ir/graph.h"
#include "slim/quant/quant_options.h"
#include "slim/quant/scale_table.h"

namespace slim {

enum class CalibAlgo {
  kAbsMax,  ///< global max |x|
  kAvg,     ///< mean over batches of the batch's mean per-sample max |x|
  kHist,    ///< percentile of the |x| histogram (default)
  kKl,      ///< entropy calibration (TensorRT's, as MXNet computes it) over the |x| histogram
  kMse,     ///< s = m * max|x|, m in 0.30, 0.32, ..., 1.00, minimising the mean squared error
};
/// "abs_max" | "avg" | "hist" | "kl" | "mse".
CalibAlgo calib_algo_from_string(const std::string& s);
std::string to_string(CalibAlgo a);

struct CalibOptions {
  CalibAlgo algo = CalibAlgo::kHist;
  int64_t batch_size = 16;  ///< PaddleSlim's default
  int64_t batches = 0;      ///< > 0: only the first N batches (file order); 0: all of `data`
  int64_t max_samples = 0;  ///< > 0: only the first N samples
  double hist_percent = 0.9999;
  /// kl: the largest share of the calibration values |x| its threshold may clip (the threshold
  /// is raised to the smallest bin edge that clips no more). Entropy calibration can cut an
  /// activation made of spikes (a MNIST map's background value per channel) far inside its
  /// range: 0.2-0.6 of the max, 0.4-2% of the values clipped, up to 20 points of top-1 lost.
  /// On 15 MobileNetV1 models trained on MNIST (tests/trained_models.h, seeds 0-4 x three kernel
  /// settings; top-1 on 2,000 test images) MXNet's cut lost 2.6, 3.2 and 20.4 points on three of
  /// them; a bound of 0.001 lost up to 1.95 points, 0.0003 at most 0.30, 0.0001 (hist's default
  /// share) up to 0.95. 1 is MXNet's unguarded calibration.
  double kl_max_clip = 0.0003;
  int64_t bins = 2048;  ///< histogram bins for hist (kl uses kKlBins)
  int threads = 0;
  bool progress = true;
};

/// Threshold of the `hist` algorithm: the first bin i whose cumulative share of the counts
/// reaches `percent`, s = (i + 0.5) * bin_width.
double threshold_hist(const std::vector<double>& hist, double bin_width, double percent);

/// Histogram bins of the `kl` algorithm over [-max|x|, max|x|] (MXNet's default); `hist` in
/// threshold_kl holds its upper half, kKlBins / 2 + 1 bins.
constexpr int64_t kKlBins = 8001;

/// Threshold of the `kl` algorithm: MXNet's entropy calibration with `levels` quantization bins
/// (255 for int8) on the histogram of |x|. `hist[0]` counts |x| < w / 2 and `hist[k]` the bin of
/// width w = 2 * abs_max / (2 * (hist.size() - 1) + 1) centred on k * w. For each cut i from
/// levels / 2 to the end, P = the 2i + 1 bins around 0 of the symmetric histogram with the tail
/// folded into the last, Q = P merged into `levels` groups and spread back over each group's
/// non-empty bins, both smoothed (eps 1e-4); s = (argmin_i KL(P || Q) + 0.5) * w.
double threshold_kl(const std::vector<double>& hist, double abs_max, int64_t levels);

/// The smallest upper bin edge of the kl histogram `hist` (as threshold_kl reads it) above which
/// at most `max_clip` of the counts lie: (i + 0.5) * w for the first bin i whose cumulative share
/// reaches 1 - max_clip, at most abs_max. The lower bound CalibOptions::kl_max_clip puts on kl.
double threshold_kl_clip_bound(const std::vector<double>& hist, double abs_max, double max_clip);

/// Calibrates the activations read by the quantization targets of `g` (see quant_targets.h) on
/// `data` in file order. `g` runs in inference mode and is not changed. Errors: no calibration
/// samples, nothing to quantize.
ScaleTable calibrate(Graph& g, const std::shared_ptr<Dataset>& data, const QuantOptions& q,
                     const CalibOptions& o);

}  // namespace slim
