#include "slim/train/trainer.h"

#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <cmath>
#include <memory>

#include "slim/exec/executor.h"
#include "slim/train/progress.h"

namespace slim {

namespace {

constexpr double kPi = 3.14159265358979323846;

void check_fits(const Graph& g, const Dataset& d) {
  SLIM_CHECK(g.inputs.size() == 1, "training needs a model with one input, graph '", g.name,
             "' has ", g.inputs.size());
  const ValueInfo& in = g.inputs[0];
  auto want = d.image_shape();
  if (!in.has_shape) return;
  bool ok = in.shape.size() == want.size() + 1;
  for (size_t i = 0; ok && i < want.size(); ++i)
    ok = in.shape[i + 1] == kDynamicDim || in.shape[i + 1] == want[i];
  SLIM_CHECK(ok, "model input '", in.name, "' has shape ", in.shape_str(), " but ", d.describe(),
             " has images of ", shape_to_string(want));
}

/// Number of correct predictions in the top-k.
int64_t correct_topk(const at::Tensor& logits, const at::Tensor& labels, int64_t k) {
  k = std::min<int64_t>(k, logits.size(1));
  at::Tensor top = std::get<1>(logits.topk(k, 1));
  return top.eq(labels.view({-1, 1})).any(1).sum().item<int64_t>();
}

}  // namespace

std::string logits_value(const Graph& g) {
  SLIM_CHECK(!g.outputs.empty(), "graph '", g.name, "' has no outputs");
  const std::string& out = g.outputs[0].name;
  int p = g.producer(out);
  if (p >= 0 && g.nodes[p].op_type == "Softmax") return g.nodes[p].inputs[0];
  return out;
}

double lr_at(const TrainOptions& o, int64_t step, int64_t steps_per_epoch, int64_t total_steps) {
  switch (o.schedule) {
    case LrSchedule::kConstant:
      return o.lr;
    case LrSchedule::kPiecewise: {
      SLIM_CHECK(o.values.size() == o.boundaries.size() + 1, "piecewise schedule needs ",
                 o.boundaries.size() + 1, " values for ", o.boundaries.size(), " boundaries, got ",
                 o.values.size());
      double epoch =
          static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, steps_per_epoch));
      size_t i = 0;
      while (i < o.boundaries.size() && epoch >= o.boundaries[i]) ++i;
      return o.values[i];
    }
    case LrSchedule::kCosine:
      return 0.5 * o.lr *
             (1 + std::cos(kPi * static_cast<double>(step) /
                           static_cast<double>(std::max<int64_t>(1, total_steps))));
  }
  return o.lr;
}

std::vector<EpochStats> train(Graph& g, const std::shared_ptr<Dataset>& data,
                              const TrainOptions& opts, const LossTerms* terms) {
  SLIM_CHECK(opts.epochs >= 1, "epochs must be >= 1, got ", opts.epochs);
  SLIM_CHECK(opts.batch_size >= 1, "batch size must be >= 1, got ", opts.batch_size);
  SLIM_CHECK(opts.lr > 0, "learning rate must be > 0, got ", opts.lr);
  check_fits(g, *data);
  set_num_threads(opts.threads);
  at::manual_seed(opts.seed);
  LoaderOptions lo;
  lo.batch_size = opts.batch_size;
  lo.shuffle = opts.shuffle;
  lo.seed = opts.seed;
  lo.drop_last = opts.drop_last;
  lo.max_samples = opts.max_samples;
  DataLoader loader(data, lo);

  Executor ex(g);
  ex.set_training(true);
  std::vector<at::Tensor> params;
  for (const auto& name : g.trainable) params.push_back(g.initializers.at(name));
  SLIM_CHECK(!params.empty(), "graph '", g.name, "' has no trainable initializers");
  if (terms)
    for (const auto& p : terms->params) params.push_back(p);
  std::unique_ptr<torch::optim::Optimizer> optim;
  if (opts.optimizer == OptimizerKind::kMomentum)
    optim = std::make_unique<torch::optim::SGD>(
        params,
        torch::optim::SGDOptions(opts.lr).momentum(opts.momentum).weight_decay(opts.weight_decay));
  else
    optim = std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(opts.lr).weight_decay(opts.weight_decay));

  const std::string logits_name = logits_value(g);
  const std::string input_name = g.inputs[0].name;
  const int64_t steps_per_epoch = loader.num_batches();
  const int64_t total_steps = steps_per_epoch * opts.epochs;
  std::vector<EpochStats> stats;
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < opts.epochs; ++epoch) {
    loader.start_epoch(epoch);
    Progress bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(opts.epochs),
                 steps_per_epoch);
    bar.set_enabled(opts.progress);
    double loss_sum = 0;
    int64_t correct = 0, seen = 0, batches = 0;
    double lr = opts.lr;
    Batch b;
    while (loader.next(b)) {
      lr = lr_at(opts, step, steps_per_epoch, total_steps);
      for (auto& group : optim->param_groups()) group.options().set_lr(lr);
      std::vector<std::string> fetch{logits_name};
      if (terms) fetch.insert(fetch.end(), terms->fetch.begin(), terms->fetch.end());
      auto out = ex.run_named({{input_name, b.images}}, fetch);
      at::Tensor logits = out.at(logits_name);
      SLIM_CHECK(logits.dim() == 2 && logits.size(0) == b.labels.size(0), "model output '",
                 logits_name, "' has shape ", shape_to_string(logits.sizes().vec()),
                 "; training needs [batch, classes]");
      SLIM_CHECK(logits.size(1) >= data->num_classes(), "model output '", logits_name, "' has ",
                 logits.size(1), " classes but ", data->describe(), " has ", data->num_classes());
      at::Tensor loss = at::nll_loss(at::log_softmax(logits, 1), b.labels);
      if (terms) {
        at::Tensor extra = terms->extra(out);
        loss = terms->task_weight == 1.0 ? loss + extra : loss * terms->task_weight + extra;
      }
      optim->zero_grad();
      loss.backward();
      optim->step();
      const int64_t n = b.labels.size(0);
      {
        at::NoGradGuard ng;
        double l = loss.item<double>();
        SLIM_CHECK(std::isfinite(l), "training diverged at epoch ", epoch + 1, " step ",
                   batches + 1, " (loss ", l, "); lower the learning rate (now ", lr, ")");
        loss_sum += l * static_cast<double>(n);
        correct += correct_topk(logits.detach(), b.labels, 1);
      }
      seen += n;
      ++batches;
      ++step;
      char info[96];
      std::snprintf(info, sizeof info, "loss %.4f acc %.4f lr %.4g",
                    loss_sum / static_cast<double>(seen),
                    static_cast<double>(correct) / static_cast<double>(seen), lr);
      bar.update(batches, seen, info);
    }
    EpochStats s;
    s.epoch = epoch + 1;
    s.samples = seen;
    s.train_loss = loss_sum / static_cast<double>(std::max<int64_t>(1, seen));
    s.train_top1 = static_cast<double>(correct) / static_cast<double>(std::max<int64_t>(1, seen));
    s.lr = lr;
    s.seconds = bar.elapsed_s();
    char info[96];
    std::snprintf(info, sizeof info, "loss %.4f acc %.4f", s.train_loss, s.train_top1);
    bar.finish(info);
    stats.push_back(s);
  }
  ex.set_training(false);
  return stats;
}

EvalResult evaluate(Graph& g, const std::shared_ptr<Dataset>& data, const EvalOptions& opts) {
  check_fits(g, *data);
  set_num_threads(opts.threads);
  LoaderOptions lo;
  lo.batch_size = opts.batch_size;
  lo.shuffle = false;
  lo.max_samples = opts.max_samples;
  DataLoader loader(data, lo);
  loader.start_epoch(0);
  Executor ex(g);
  ex.set_training(false);
  const std::string logits_name = logits_value(g);
  const std::string input_name = g.inputs[0].name;
  Progress bar("eval", loader.num_batches());
  bar.set_enabled(opts.progress);
  EvalResult r;
  double loss_sum = 0;
  int64_t top1 = 0, top5 = 0, batches = 0;
  Batch b;
  at::NoGradGuard ng;
  while (loader.next(b)) {
    at::Tensor logits = ex.run_named({{input_name, b.images}}, {logits_name}).at(logits_name);
    SLIM_CHECK(logits.dim() == 2 && logits.size(1) >= data->num_classes(), "model output '",
               logits_name, "' has shape ", shape_to_string(logits.sizes().vec()), " but ",
               data->describe(), " has ", data->num_classes(), " classes");
    loss_sum +=
        at::nll_loss(at::log_softmax(logits, 1), b.labels, {}, at::Reduction::Sum).item<double>();
    top1 += correct_topk(logits, b.labels, 1);
    top5 += correct_topk(logits, b.labels, 5);
    r.samples += b.labels.size(0);
    ++batches;
    char info[64];
    std::snprintf(info, sizeof info, "top1 %.4f",
                  static_cast<double>(top1) / static_cast<double>(r.samples));
    bar.update(batches, r.samples, info);
  }
  SLIM_CHECK(r.samples > 0, data->describe(), " has no samples to evaluate");
  r.top1 = static_cast<double>(top1) / static_cast<double>(r.samples);
  r.top5 = static_cast<double>(top5) / static_cast<double>(r.samples);
  r.loss = loss_sum / static_cast<double>(r.samples);
  r.seconds = bar.elapsed_s();
  char info[96];
  std::snprintf(info, sizeof info, "top1 %.4f top5 %.4f loss %.4f", r.top1, r.top5, r.loss);
  bar.finish(info);
  return r;
}

OptimizerKind optimizer_from_string(const std::string& name) {
  if (name == "momentum") return OptimizerKind::kMomentum;
  if (name == "adam") return OptimizerKind::kAdam;
  SLIM_FAIL("optimizer '", name, "': expected momentum or adam");
}

LrSchedule lr_schedule_from_string(const std::string& name) {
  if (name == "constant") return LrSchedule::kConstant;
  if (name == "piecewise") return LrSchedule::kPiecewise;
  if (name == "cosine") return LrSchedule::kCosine;
  SLIM_FAIL("lr schedule '", name, "': expected constant, piecewise or cosine");
}

}  // namespace slim
