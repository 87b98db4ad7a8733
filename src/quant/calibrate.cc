#include "slim/quant/calibrate.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "slim/exec/executor.h"
#include "slim/quant/fake_quant.h"
#include "slim/quant/quant_targets.h"
#include "slim/train/progress.h"

namespace slim {

CalibAlgo calib_algo_from_string(const std::string& s) {
  if (s == "abs_max") return CalibAlgo::kAbsMax;
  if (s == "avg") return CalibAlgo::kAvg;
  if (s == "hist") return CalibAlgo::kHist;
  if (s == "kl" || s == "KL") return CalibAlgo::kKl;
  if (s == "mse") return CalibAlgo::kMse;
  SLIM_FAIL("calibration algorithm '", s, "' is not one of abs_max, avg, hist, kl, mse");
}

std::string to_string(CalibAlgo a) {
  switch (a) {
    case CalibAlgo::kAbsMax:
      return "abs_max";
    case CalibAlgo::kAvg:
      return "avg";
    case CalibAlgo::kHist:
      return "hist";
    case CalibAlgo::kKl:
      return "kl";
    case CalibAlgo::kMse:
      return "mse";
  }
  return "?";
}

double threshold_hist(const std::vector<double>& hist, double bin_width, double percent) {
  SLIM_CHECK(percent > 0 && percent <= 1, "hist_percent must be in (0, 1], got ", percent);
  double total = 0;
  for (double h : hist) total += h;
  if (total <= 0) return 0;
  double cum = 0;
  for (size_t i = 0; i < hist.size(); ++i) {
    cum += hist[i];
    if (cum / total >= percent) return (static_cast<double>(i) + 0.5) * bin_width;
  }
  return (static_cast<double>(hist.size()) - 0.5) * bin_width;
}

namespace {

constexpr int kMseCandidates = 36;  // m = 0.30, 0.32, ..., 1.00
double mse_multiplier(int k) { return 0.30 + 0.02 * k; }

struct Stats {
  double abs_max = 0;
  double avg_sum = 0;  ///< sum over batches of the batch's mean per-sample max |x|
  int64_t avg_batches = 0;
  std::vector<double> hist;
  std::vector<double> sq_err;  ///< mse: summed squared error per candidate
  int64_t elements = 0;
  bool is_unsigned = false;
};

}  // namespace

ScaleTable calibrate(Graph& g, const std::shared_ptr<Dataset>& data, const QuantOptions& q,
                     const CalibOptions& o) {
  check_quant_options(q);
  SLIM_CHECK(data != nullptr, "calibration needs data");
  SLIM_CHECK(o.batch_size > 0, "calibration batch size must be > 0, got ", o.batch_size);
  SLIM_CHECK(o.batches >= 0, "--batches must be >= 0, got ", o.batches);
  SLIM_CHECK(o.bins >= 256, "histogram bins must be >= 256, got ", o.bins);
  SLIM_CHECK(o.kl_max_clip > 0 && o.kl_max_clip <= 1, "kl_max_clip must be in (0, 1], got ",
             o.kl_max_clip);
  SLIM_CHECK(o.algo != CalibAlgo::kKl || q.act_bits <= 12,
             "kl calibration takes activation bits up to 12 (its ", kKlBins,
             "-bin histogram), got ", q.act_bits);
  std::vector<QuantTarget> targets = find_quant_targets(g, q);
  SLIM_CHECK(!targets.empty(), "nothing to quantize in the model: no ", "Conv/Gemm/MatMul",
             " node with a constant weight (quantize_op_types, not_quant_pattern)");
  SLIM_CHECK(g.inputs.size() == 1, "calibration feeds one image input; the model has ",
             g.inputs.size(), " inputs");

  ScaleTable table;
  table.algo = to_string(o.algo);
  table.act_bits = q.act_bits;
  table.weight_bits = q.weight_bits;
  std::map<std::string, Stats> stats;
  std::vector<std::string> fetch;
  for (const auto& v : quantized_values(targets)) {
    auto& a = table.activations[v];
    for (int c : g.consumers(v)) a.consumers.push_back(g.nodes[c].name);
    stats[v].is_unsigned = is_nonnegative(g, v);
    fetch.push_back(v);
  }

  LoaderOptions lo;
  lo.batch_size = o.batch_size;
  lo.shuffle = false;
  lo.max_samples = o.max_samples;
  DataLoader loader(data, lo);
  int64_t nb = loader.num_batches();
  if (o.batches > 0) nb = std::min(nb, o.batches);
  SLIM_CHECK(nb > 0 && loader.num_samples() > 0, "no calibration data: ", data->describe(),
             " gives no batch (max_samples ", o.max_samples, ")");

  if (o.threads > 0) set_num_threads(o.threads);
  Executor ex(g);
  ex.set_training(false);
  at::NoGradGuard no_grad;
  const bool second_pass =
      o.algo == CalibAlgo::kHist || o.algo == CalibAlgo::kKl || o.algo == CalibAlgo::kMse;
  int64_t samples = 0;
  for (int pass = 0; pass < (second_pass ? 2 : 1); ++pass) {
    Progress bar(pass == 0 ? "calibrate" : "calibrate (" + table.algo + ")", nb);
    bar.set_enabled(o.progress);
    loader.start_epoch(0);
    Batch b;
    for (int64_t k = 0; k < nb && loader.next(b); ++k) {
      auto values = ex.run_named({{g.inputs[0].name, b.images}}, fetch);
      for (const auto& name : fetch) {
        Stats& s = stats[name];
        at::Tensor x = values.at(name).to(at::kFloat);
        at::Tensor ax = x.abs();
        if (pass == 0) {
          s.abs_max = std::max(s.abs_max, ax.max().item<double>());
          at::Tensor per_sample = ax.reshape({ax.size(0), -1}).amax(1);
          s.avg_sum += per_sample.mean().item<double>();
          ++s.avg_batches;
        } else if (s.abs_max > 0) {
          if (o.algo == CalibAlgo::kMse) {
            s.sq_err.resize(kMseCandidates, 0.0);
            for (int m = 0; m < kMseCandidates; ++m) {
              at::Tensor th = at::scalar_tensor(mse_multiplier(m) * s.abs_max, at::kFloat);
              at::Tensor d = x - quant_dequant(x, th, q.act_bits, -1, s.is_unsigned);
              s.sq_err[m] += d.pow(2).sum().item<double>();
            }
            s.elements += x.numel();
          } else if (o.algo == CalibAlgo::kKl) {
            // The upper half of MXNet's symmetric histogram; the lower half stays empty for |x|.
            at::Tensor h = at::histc(ax, kKlBins, -s.abs_max, s.abs_max);
            constexpr int64_t half = kKlBins / 2;
            s.hist.resize(half + 1, 0.0);
            auto acc = h.accessor<float, 1>();
            for (int64_t i = 0; i <= half; ++i) s.hist[i] += acc[half + i];
          } else {
            at::Tensor h = at::histc(ax, o.bins, 0, s.abs_max);
            s.hist.resize(o.bins, 0.0);
            auto acc = h.accessor<float, 1>();
            for (int64_t i = 0; i < o.bins; ++i) s.hist[i] += acc[i];
          }
        }
      }
      if (pass == 0) samples += b.images.size(0);
      bar.update(k + 1, (k + 1) * o.batch_size, "");
    }
    bar.finish("");
  }
  table.samples = samples;
  table.batches = nb;
  // One value per activation, across the threads (kl searches ~4,000 cuts for each).
  std::vector<std::pair<const std::string*, ActivationScale*>> work;
  for (auto& [name, a] : table.activations) work.push_back({&name, &a});
  at::parallel_for(0, static_cast<int64_t>(work.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      ActivationScale& a = *work[k].second;
      const Stats& s = stats.at(*work[k].first);
      a.abs_max = s.abs_max;
      a.is_unsigned = s.is_unsigned;
      double th = s.abs_max;
      const double width = s.abs_max / static_cast<double>(o.bins);
      if (s.abs_max > 0) {
        switch (o.algo) {
          case CalibAlgo::kAbsMax:
            break;
          case CalibAlgo::kAvg:
            th = s.avg_sum / static_cast<double>(s.avg_batches);
            break;
          case CalibAlgo::kHist:
            th = threshold_hist(s.hist, width, o.hist_percent);
            break;
          case CalibAlgo::kKl:
            // MXNet's 255 quantization bins for int8 (2^bits - 1), also for unsigned activations,
            // which are then stored with 255 levels above 0: the cut is chosen as for int8.
            th = std::max(threshold_kl(s.hist, s.abs_max, (int64_t{1} << q.act_bits) - 1),
                          threshold_kl_clip_bound(s.hist, s.abs_max, o.kl_max_clip));
            break;
          case CalibAlgo::kMse: {
            int best = static_cast<int>(std::min_element(s.sq_err.begin(), s.sq_err.end()) -
                                        s.sq_err.begin());
            th = mse_multiplier(best) * s.abs_max;
            break;
          }
        }
      }
      // A value that was always 0 (a dead channel set) still needs a usable scale.
      a.threshold = th > 0 ? th : 1e-8;
    }
  });
  return table;
}

}  // namespace slim
