#pragma once
/// Architecture search: simulated annealing (SaController) over a search space, every candidate
/// checked against the limits before any training, trained for a short budget on the training
/// data minus a validation split, and rewarded with its validation top-1 (the test split is
/// never touched). A checkpoint rewritten after every step lets a killed search resume exactly
/// where it stopped.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "slim/data/dataset.h"
#include "slim/nas/controller.h"
#include "slim/nas/latency_table.h"
#include "slim/nas/search_space.h"
#include "slim/train/trainer.h"

namespace slim {

/// Limits a candidate must meet before it is trained; 0 = no limit.
struct NasLimits {
  int64_t max_flops = 0;      ///< multiply-accumulates per image (count_flops)
  int64_t max_params = 0;     ///< weight elements (count_params)
  int64_t max_size = 0;       ///< bytes of the model file (NasOptions::model_size)
  double max_latency_ms = 0;  ///< measured median at latency_batch / latency_threads
};

struct NasOptions {
  std::string space = "mobilenet_v2";
  std::vector<int64_t> input{1, 28, 28};  ///< C,H,W
  int64_t classes = 10;
  int64_t steps = 10;  ///< candidates trained and rewarded, the initial tokens included
  NasLimits limits;
  /// Bytes of the file a candidate would be saved as; default: the float ONNX file. (The CLI
  /// passes the int8 weight-only file's size for --size-format int8.)
  std::function<int64_t(const Graph&)> model_size;
  std::string size_format = "float";  ///< recorded in the checkpoint with model_size's meaning
  /// Latency: Slim's executor on this machine, median of latency_runs after latency_warmup,
  /// Conv+BN folded, batch latency_batch, latency_threads threads (0: all cores).
  int64_t latency_batch = 1;
  int latency_threads = 0;
  int latency_warmup = 3;
  int latency_runs = 20;
  /// When set, latency is predicted from this table (its batch and threads) instead of measured:
  /// no candidate is run to check the limit, and the search's result does not depend on how
  /// busy the machine is.
  std::shared_ptr<const LatencyTable> latency_table;
  /// Per-candidate training (epochs, batch, lr, max_samples, seed, threads...). The candidate's
  /// weights are drawn from train.seed.
  TrainOptions train;
  /// Samples of the training data kept out of training for the reward.
  int64_t val_samples = 5000;
  int64_t eval_batch = 256;
  /// reward = val_top1 * (latency / target)^(-latency_weight) (MnasNet's soft constraint, whose
  /// paper uses 0.07), target = target_latency_ms or else limits.max_latency_ms; 0: the reward
  /// is the validation top-1.
  double latency_weight = 0;
  double target_latency_ms = 0;
  SaOptions controller;
  /// Draws in a row that break a limit before the search stops with an error.
  int64_t max_draws = 500;
  /// Directory for the checkpoint (checkpoint.json), the log (search.log), the best candidate
  /// (best.json, best.onnx). Created if missing; a checkpoint there is resumed.
  std::string output_dir;
  /// What the training data is (dataset describe()): a resumed search must use the same.
  std::string data_description;
  bool progress = true;
  /// Distributed (nullptr or one rank: one process): rank 0 runs the controller and hands one
  /// candidate at a time to every rank (itself included) through the store; each rank trains
  /// and scores its candidate alone and sends back its top-1 and trained model. Rank 0 writes
  /// the checkpoint and the results. controller.workers should be the number of ranks.
  dist::Group* group = nullptr;
};

/// One candidate: trained and rewarded, or rejected by a limit before training.
struct NasCandidate {
  int64_t step = 0;  ///< rewarded candidates before it (rejections share the step they delay)
  Tokens tokens;
  int64_t flops = 0, params = 0, size = 0;
  double latency_ms = 0;  ///< 0 when not measured (rejected by a limit checked before latency)
  bool rejected = false;
  std::string reason;  ///< why rejected: "flops 12345 > max 10000"
  /// Rejected: value / limit of the limit it broke (> 1). Until a candidate meets the limits,
  /// the controller's base moves to the least violating rejected candidate, so a search whose
  /// initial tokens and all their neighbours break a limit walks toward it.
  double violation = 0;
  double val_top1 = 0, reward = 0, temperature = 0, seconds = 0;
  bool accepted = false;  ///< became the controller's base
};

struct NasResult {
  std::vector<NasCandidate> candidates;  ///< in order, rejections included
  Tokens best_tokens;
  double best_reward = 0;
  int64_t rewarded = 0, rejected = 0;
  double seconds = 0;  ///< wall time of this run (not of earlier runs of a resumed search)
};

/// Runs (or resumes) the search. In a distributed run rank 0 returns the result, the other
/// ranks an empty one. `train_data` is the training split; the validation split is
/// carved from it with controller.seed. Errors: limits no candidate meets (after max_draws
/// draws in a row), a checkpoint written with other options (naming the first that differs),
/// a corrupt checkpoint (naming the file). Nothing in output_dir is overwritten by a run that
/// fails before its first step.
NasResult nas_search(const NasOptions& options, const std::shared_ptr<Dataset>& train_data);

/// A candidate as the checkpoint stores it: step, tokens, flops, params, size, latency_ms,
/// rejected with its reason, or val_top1, reward, accepted, temperature, seconds.
nlohmann::json nas_candidate_json(const NasCandidate& c);

/// The candidate's measured metrics under the options' limits, without training; `graph` (if
/// not null) receives the built candidate with drawn weights.
NasCandidate nas_measure(const SearchSpace& space, const Tokens& tokens, const NasOptions& options,
                         Graph* graph = nullptr);

}  // namespace slim
