#pragma once
/// Supervised training and evaluation of a Graph on a Dataset: cross-entropy, SGD with momentum
/// (PaddleSlim's Momentum: v = mu*v + g; p -= lr*v) or Adam, weight decay, learning-rate
/// schedules, top-1/top-5. Training updates the graph's initializers in place.
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "slim/data/dataset.h"
#include "slim/ir/graph.h"

namespace slim {

namespace dist {
class Group;
}

enum class OptimizerKind { kMomentum, kAdam };
enum class LrSchedule { kConstant, kPiecewise, kCosine };

/// "momentum" or "adam"; "constant", "piecewise" or "cosine". Errors name the value.
OptimizerKind optimizer_from_string(const std::string& name);
LrSchedule lr_schedule_from_string(const std::string& name);

struct TrainOptions {
  int64_t epochs = 1;
  int64_t batch_size = 128;  ///< PaddleSlim's tutorial
  double lr = 0.1;           ///< PaddleSlim's tutorial
  OptimizerKind optimizer = OptimizerKind::kMomentum;
  double momentum = 0.9;
  double weight_decay = 0.0;  ///< L2, applied to every trainable initializer
  LrSchedule schedule = LrSchedule::kConstant;
  std::vector<double> boundaries;  ///< piecewise: epoch boundaries (may be fractional)
  std::vector<double> values;      ///< piecewise: boundaries.size() + 1 learning rates
  uint64_t seed = 0;               ///< shuffling, dropout and anything random
  int64_t max_samples = 0;         ///< > 0: train on the first N samples only
  bool shuffle = true;             ///< reshuffle every epoch (seeded); false = file order, as
                                   ///< PaddleSlim's tutorial reader (paddle.dataset.mnist.train)
  bool drop_last = false;          ///< skip a last batch smaller than batch_size (tutorial: true)
  int threads = 0;                 ///< LibTorch threads; <= 0 all cores
  bool progress = true;            ///< progress bar / log lines on stderr
  /// Data parallel over the group's ranks (nullptr or one rank: one process). Each rank takes
  /// its slice of every global batch (batch_size is the global batch, the sample order that of
  /// one process), gradients are averaged by c10d's bucketed all-reduce during backward, and
  /// the weights stay equal on every rank. BatchNormalization uses each rank's slice (running
  /// statistics: rank 0's, copied to all at the end of each epoch) unless sync_bn.
  dist::Group* group = nullptr;
  bool sync_bn = false;  ///< batch statistics over the global batch (SyncBatchNorm)
  /// Non-empty: after each epoch the weights, optimizer state and epoch go to this file
  /// (atomically; rank 0 writes), and a run that finds it with the same checkpoint_key resumes
  /// after its last epoch. The file is removed when training completes.
  std::string checkpoint;
  std::string checkpoint_key;
};

struct EvalResult {
  double top1 = 0, top5 = 0, loss = 0;
  int64_t samples = 0;
  double seconds = 0;
};

struct EpochStats {
  int64_t epoch = 0;
  double train_loss = 0, train_top1 = 0, lr = 0, seconds = 0;
  int64_t samples = 0;
};

/// How many rows of `logits` (N x classes) have their label among the k highest scores. Ties
/// resolve as at::topk orders them; evaluation, training statistics and sensitivity all count
/// with this one function, so their numbers agree.
int64_t correct_topk(const at::Tensor& logits, const at::Tensor& labels, int64_t k);

/// Learning rate at `step` of `total_steps` (steps_per_epoch converts epoch boundaries).
double lr_at(const TrainOptions& o, int64_t step, int64_t steps_per_epoch, int64_t total_steps);

/// Name of the value holding the class scores: the graph's first output, or the input of a
/// final Softmax (training needs logits).
std::string logits_value(const Graph& g);

/// Extra terms of the training loss (distillation): each step the trainer fetches `fetch`
/// besides the logits and minimises task_weight * cross-entropy + extra(values).
struct LossTerms {
  std::vector<std::string> fetch;
  /// Sum of the extra terms as a scalar tensor; `values` holds the fetched values.
  std::function<at::Tensor(const std::map<std::string, at::Tensor>& values)> extra;
  double task_weight = 1.0;
  /// Trainable tensors outside the graph (e.g. distillation adapters), optimised alongside.
  std::vector<at::Tensor> params;
};

/// Trains `g` in place; returns per-epoch statistics. Errors name the dataset and the model
/// input when their shapes do not fit. `terms` adds loss terms (nullptr: cross-entropy only).
std::vector<EpochStats> train(Graph& g, const std::shared_ptr<Dataset>& data,
                              const TrainOptions& opts, const LossTerms* terms = nullptr);

/// Deletes opts.checkpoint (rank 0 only); callers do once the trained model is saved, so that a
/// kill between training and saving still resumes.
void remove_checkpoint(const TrainOptions& opts);

struct EvalOptions {
  int64_t batch_size = 256;
  int64_t max_samples = 0;
  int threads = 0;
  bool progress = true;
  /// Split over the group's ranks (contiguous parts of the samples) and summed: every rank
  /// returns the whole set's result.
  dist::Group* group = nullptr;
};

/// Evaluates `g` (inference mode) on every sample of `data`: top-1, top-5, mean cross-entropy.
EvalResult evaluate(Graph& g, const std::shared_ptr<Dataset>& data, const EvalOptions& opts);

}  // namespace slim
