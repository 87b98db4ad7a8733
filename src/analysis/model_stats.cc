#include "slim/analysis/model_stats.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>
#include <set>

#include "slim/exec/executor.h"
#include "slim/exec/infer_shapes.h"
#include "slim/passes/fold_batch_norm.h"

namespace slim {

ParamStats count_params(const Graph& g) {
  // A quantized model stores its weights as integers read by DequantizeLinear (or Cast, for
  // int16 weight-only): those count as parameters, their scales and zero points do not.
  std::set<std::string> quantized, quant_meta;
  for (const auto& n : g.nodes) {
    if (n.op_type == "DequantizeLinear") {
      if (g.is_initializer(n.input(0))) quantized.insert(n.input(0));
      for (size_t i = 1; i < n.inputs.size(); ++i) quant_meta.insert(n.inputs[i]);
    } else if (n.op_type == "Cast") {
      // Only int8/int16 weights stored for Cast + Mul, not integer constants such as shapes.
      auto it = g.initializers.find(n.input(0));
      if (it != g.initializers.end() &&
          (it->second.scalar_type() == at::kChar || it->second.scalar_type() == at::kShort))
        quantized.insert(n.input(0));
    } else if (n.op_type == "QuantizeLinear") {
      for (size_t i = 1; i < n.inputs.size(); ++i) quant_meta.insert(n.inputs[i]);
    }
  }
  ParamStats s;
  for (const auto& [name, t] : g.initializers) {
    s.tensors++;
    s.bytes += static_cast<int64_t>(t.nbytes());
    if (quantized.count(name) ||
        (at::isFloatingType(t.scalar_type()) && !quant_meta.count(name)))
      s.count += t.numel();
  }
  return s;
}

int64_t file_size(const std::string& path) {
  struct stat st;
  SLIM_CHECK(::stat(path.c_str(), &st) == 0, "cannot stat '", path, "': ", std::strerror(errno));
  return static_cast<int64_t>(st.st_size);
}

LatencyReport measure_latency(Graph& g, const LatencyOptions& opts) {
  SLIM_CHECK(opts.batch >= 1, "batch must be >= 1, got ", opts.batch);
  SLIM_CHECK(opts.runs >= 1, "runs must be >= 1, got ", opts.runs);
  SLIM_CHECK(opts.warmup >= 0, "warmup must be >= 0, got ", opts.warmup);
  set_num_threads(opts.threads);
  Graph folded;
  if (opts.fold_batch_norm) {
    // A shallow copy: folding puts new tensors in the folded convs' places and shares the rest,
    // so the model's weights are not held twice.
    folded = g;
    fold_batch_norm(folded);
  }
  Graph& run = opts.fold_batch_norm ? folded : g;
  Executor ex(run);
  ex.set_onednn(opts.onednn);
  auto inputs = example_inputs(run, opts.batch, /*random=*/true);
  for (int i = 0; i < opts.warmup; ++i) ex.run(inputs);
  LatencyReport r;
  r.batch = opts.batch;
  r.threads = num_threads();
  r.runs = opts.runs;
  ex.set_profiling(opts.profile);
  for (int i = 0; i < opts.runs; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto out = ex.run(inputs);
    auto t1 = std::chrono::steady_clock::now();
    r.samples_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  if (opts.profile) r.per_node = ex.profile();
  latency_summarize(r);
  return r;
}

void latency_summarize(LatencyReport& r) {
  SLIM_CHECK(!r.samples_ms.empty(), "no latency samples to summarize");
  std::vector<double> s = r.samples_ms;
  std::sort(s.begin(), s.end());
  const size_t n = s.size();
  r.median_ms = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
  r.mean_ms = std::accumulate(s.begin(), s.end(), 0.0) / static_cast<double>(n);
  r.min_ms = s.front();
  r.p90_ms = s[std::min(n - 1, static_cast<size_t>(0.9 * static_cast<double>(n)))];
}

}  // namespace slim
