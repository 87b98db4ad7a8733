#pragma once
/// Latency tables (Light-NAS, PaddleSlim's TableLatencyPredictor), measured on this machine:
/// one entry per distinct step the executor runs (op type, engine, input and weight shapes at
/// the table's batch, attributes, the activation or QDQ nodes fused into it), timed alone with
/// Slim's executor; a model's latency is predicted as the sum of its steps' entries plus a fixed
/// per-run cost measured on a whole network. PaddleSlim ships tables for three phone SoCs and
/// cannot measure one; any machine Slim runs on can build its own.
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "slim/ir/graph.h"

namespace slim {

struct LatencyTableOptions {
  int64_t batch = 1;
  int threads = 0;  ///< <= 0: all cores (the table records the count used)
  int warmup = 5;
  int runs = 30;  ///< entry = median of the step's time over these runs
  /// Timing rounds per entry: latency_table_add times each step until it has this many
  /// rounds, once per call, and keeps the smallest median. A shared machine drifts over
  /// minutes (on this project's VM the same network's median moved 20% between two runs ten
  /// minutes apart); calling add once per round over all networks spreads every entry's rounds
  /// over the whole measurement, and the minimum is the machine's unloaded state, which the
  /// same rule applied to the networks being predicted also measures.
  int rounds = 1;
  /// latency_table_add calibrates a table that is not calibrated yet on the network it adds;
  /// false leaves that to a later latency_table_calibrate on several networks.
  bool calibrate = true;
};

struct LatencyTable {
  int64_t batch = 1;
  int threads = 1;
  int warmup = 5, runs = 30;
  /// The executor's own time per step outside the step's kernel (slot bookkeeping, freeing
  /// values, fused activations passed on): a chain of 101 tiny steps minus a chain of 1, per
  /// step, less the tiny kernel's profiled time.
  double step_ms = 0;
  /// A step timed alone does not take what it takes inside a network (its weights stay in
  /// cache, its thread team is always warm): whole networks' measured medians are fitted as
  /// scale * (sum of entries) + fixed_ms + step_ms * steps, least squares over the calibration
  /// networks (one network: scale 1). Measured on mobilenet_v2 at batch 1, entries summed 15%
  /// above the networks' times.
  double scale = 1;
  /// Per run of a whole network beyond its steps (input checks, the output's layout).
  double fixed_ms = 0;
  bool has_fixed = false;                   ///< calibrated: scale and fixed_ms set
  std::map<std::string, double> entries;    ///< step signature -> median ms (min over rounds)
  std::map<std::string, int> entry_rounds;  ///< step signature -> rounds timed (absent: 1)
  /// Calibration networks' whole-network medians (min over the calibrations that timed them),
  /// by a digest of their steps.
  std::map<std::string, double> network_ms;
};

/// The signature of every step the executor runs for `g` at the table's batch, in order,
/// after Conv+BN folding (as slim bench and the NAS latency limit measure). E.g.
/// "Conv[onednn] x=1x16x14x14 w=96x16x1x1 b=96 group=1 kernel_shape=1,1 pads=0,0,0,0
/// strides=1,1 +Clip".
std::vector<std::string> latency_signatures(const Graph& g, int64_t batch);

/// Times every step of `g` whose signature is not in `table` yet, or has fewer than o.rounds
/// rounds (once more, keeping the smaller median), each alone in a graph of its node and the
/// nodes fused into it, inputs in the layout the network gives them; then, if the table is not
/// calibrated yet (and o.calibrate), calibrates it on `g` alone. `table` must be empty or have
/// the options' batch and threads. `on_progress(done, todo)` is called after each timing.
/// Returns the number of steps timed.
int64_t latency_table_add(LatencyTable& table, const Graph& g, const LatencyTableOptions& o,
                          const std::function<void(int64_t, int64_t)>& on_progress = {});

/// Fits scale and fixed_ms (above) to `networks`, each timed whole (median of the table's runs,
/// the smaller of that and an earlier calibration's time of the same network in network_ms);
/// every step of each must be in the table (errors name the first that is not).
void latency_table_calibrate(LatencyTable& table, const std::vector<Graph>& networks,
                             const LatencyTableOptions& o);

/// Predicted latency of `g` in ms: scale * (the sum of its steps' entries) + step_ms per step +
/// fixed_ms. Errors name the first step missing from the table.
double latency_predict(const LatencyTable& table, const Graph& g);

/// JSON: {"version", "batch", "threads", "warmup", "runs", "step_ms", "scale", "fixed_ms",
/// "entries", "entry_rounds" (entries timed more than once), "network_ms"}, written atomically.
/// Load errors name the file.
void latency_table_save(const LatencyTable& t, const std::string& path);
LatencyTable latency_table_load(const std::string& path);

}  // namespace slim
