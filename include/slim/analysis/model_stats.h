#pragma once
/// Size and speed of a model: parameter count and bytes, file size, latency.
#include <string>
#include <vector>

#include "slim/exec/executor.h"
#include "slim/ir/graph.h"

namespace slim {

struct ParamStats {
  int64_t count = 0;    ///< weight elements: float initializers, and the integer weights of a
                        ///< quantized model (not its scales and zero points)
  int64_t bytes = 0;    ///< bytes of all initializers as stored
  int64_t tensors = 0;  ///< number of initializers
};

ParamStats count_params(const Graph& g);

/// Size of a file in bytes; errors name the file.
int64_t file_size(const std::string& path);

struct LatencyOptions {
  int64_t batch = 1;  ///< substituted for the dynamic batch dim
  int threads = 0;    ///< LibTorch intra-op threads; <= 0: all cores
  int warmup = 5;     ///< runs discarded before timing
  int runs = 30;      ///< timed runs
  /// Fold Conv+BatchNormalization first (fold_batch_norm on a copy), as deployment runtimes
  /// such as ONNX Runtime do when they load a model.
  bool fold_batch_norm = true;
  /// Convolutions on oneDNN with prepacked weights (Executor::set_onednn); off: ATen's
  /// at::convolution, for comparison.
  bool onednn = true;
  /// Also time every node over the timed runs (LatencyReport::per_node). The clock reads add a
  /// little to the totals.
  bool profile = false;
};

struct LatencyReport {
  double median_ms = 0, mean_ms = 0, min_ms = 0, p90_ms = 0;
  int64_t batch = 1;
  int threads = 1;
  int runs = 0;
  std::vector<double> samples_ms;
  /// With LatencyOptions::profile: each node's time, total_ms over `runs` timed runs.
  std::vector<NodeTime> per_node;
};

/// Inference latency on random inputs: median of `runs` after `warmup`.
LatencyReport measure_latency(Graph& g, const LatencyOptions& opts);

/// Fills the statistics of `r` from r.samples_ms (at least one): median (the mean of the middle
/// two for an even count), mean, min, and p90 = the sample at index floor(0.9 n) of the sorted
/// samples (the largest for n < 10).
void latency_summarize(LatencyReport& r);

}  // namespace slim
