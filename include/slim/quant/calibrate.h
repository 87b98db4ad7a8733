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
  kKl,      ///< TensorRT-style entropy calibration over the |x| histogram
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
  int64_t bins = 2048;  ///< histogram bins for hist and kl
  int threads = 0;
  bool progress = true;
};

/// Threshold of the `hist` algorithm: the first bin i whose cumulative share of the counts
/// reaches `percent`, s = (i + 0.5) * bin_width.
double threshold_hist(const std::vector<double>& hist, double bin_width, double percent);

/// Threshold of the `kl` algorithm for a histogram of |x| with `levels` positive quantization
/// levels (127 for int8): for each cut i from (bins - 1) / 2 to bins - 1, P = the first i bins with
/// the tail folded into bin i - 1, Q = P merged into `levels` groups and spread back over the
/// non-empty bins of each group; s = (argmin_i KL(P || Q) + 0.5) * bin_width.
double threshold_kl(const std::vector<double>& hist, double bin_width, int64_t levels);

/// Calibrates the activations read by the quantization targets of `g` (see quant_targets.h) on
/// `data` in file order. `g` runs in inference mode and is not changed. Errors: no calibration
/// samples, nothing to quantize.
ScaleTable calibrate(Graph& g, const std::shared_ptr<Dataset>& data, const QuantOptions& q,
                     const CalibOptions& o);

}  // namespace slim
