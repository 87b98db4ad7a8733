#include "slim/train/trainer.h"

#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <sstream>

#include "slim/dist/dist.h"
#include "slim/exec/executor.h"
#include "slim/onnx/onnx_io.h"
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

/// Every float initializer by name (weights and BatchNormalization statistics), in name order.
std::vector<std::pair<std::string, at::Tensor>> float_state(const Graph& g) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [name, t] : g.initializers)
    if (t.is_floating_point()) out.emplace_back(name, t);
  return out;
}

/// Checkpoint file: key, epochs done, their statistics, every float initializer, the extra
/// trainable tensors and the optimizer's state, in one torch archive written atomically.
void save_checkpoint(const std::string& path, const std::string& key, int64_t epochs_done,
                     const std::vector<EpochStats>& stats, const Graph& g,
                     const std::vector<at::Tensor>& extra, torch::optim::Optimizer& optim) {
  torch::serialize::OutputArchive ar;
  ar.write("key", c10::IValue(key));
  ar.write("epochs_done", c10::IValue(epochs_done));
  nlohmann::json js = nlohmann::json::array();
  for (const auto& st : stats)
    js.push_back({st.epoch, st.train_loss, st.train_top1, st.lr, st.seconds, st.samples});
  ar.write("stats", c10::IValue(js.dump()));
  std::string names;
  int64_t i = 0;
  for (const auto& [name, t] : float_state(g)) {
    names += name + "\n";
    ar.write("w" + std::to_string(i++), t.detach(), /*is_buffer=*/true);
  }
  ar.write("names", c10::IValue(names));
  for (size_t k = 0; k < extra.size(); ++k)
    ar.write("x" + std::to_string(k), extra[k].detach(), /*is_buffer=*/true);
  torch::serialize::OutputArchive oa;
  optim.save(oa);
  ar.write("optimizer", oa);
  std::ostringstream os;
  ar.save_to(os);
  write_file_atomic(path, os.str());
}

/// Restores a checkpoint's state into g, extra and optim; returns the epochs it had done, or -1
/// (with a note) when it belongs to another run.
int64_t load_checkpoint(const std::string& path, const std::string& bytes, const std::string& key,
                        std::vector<EpochStats>* stats, Graph& g,
                        const std::vector<at::Tensor>& extra, torch::optim::Optimizer& optim,
                        bool note) {
  torch::serialize::InputArchive ar;
  std::istringstream is(bytes);
  try {
    ar.load_from(is);
  } catch (const std::exception& e) {
    SLIM_FAIL("checkpoint '", path, "' cannot be read (", error_brief(e),
              "); delete it to start over");
  }
  c10::IValue v;
  ar.read("key", v);
  if (v.toStringRef() != key) {
    if (note)
      std::fprintf(stderr, "note: checkpoint '%s' is from another command; starting over\n",
                   path.c_str());
    return -1;
  }
  ar.read("epochs_done", v);
  const int64_t done = v.toInt();
  ar.read("stats", v);
  for (const auto& e : nlohmann::json::parse(v.toStringRef())) {
    EpochStats st;
    st.epoch = e[0];
    st.train_loss = e[1];
    st.train_top1 = e[2];
    st.lr = e[3];
    st.seconds = e[4];
    st.samples = e[5];
    stats->push_back(st);
  }
  ar.read("names", v);
  std::istringstream names(v.toStringRef());
  std::string name;
  int64_t i = 0;
  at::NoGradGuard ng;
  while (std::getline(names, name)) {
    auto it = g.initializers.find(name);
    SLIM_CHECK(it != g.initializers.end(), "checkpoint '", path, "' holds '", name,
               "', which the model lacks; delete it to start over");
    at::Tensor t;
    ar.read("w" + std::to_string(i++), t, /*is_buffer=*/true);
    SLIM_CHECK(t.sizes() == it->second.sizes(), "checkpoint '", path, "': '", name, "' has shape ",
               shape_to_string(t.sizes().vec()), ", the model ",
               shape_to_string(it->second.sizes().vec()), "; delete it to start over");
    it->second.copy_(t);
  }
  for (size_t k = 0; k < extra.size(); ++k) {
    at::Tensor t;
    ar.read("x" + std::to_string(k), t, /*is_buffer=*/true);
    extra[k].copy_(t);
  }
  torch::serialize::InputArchive oa;
  ar.read("optimizer", oa);
  optim.load(oa);
  return done;
}

}  // namespace

int64_t correct_topk(const at::Tensor& logits, const at::Tensor& labels, int64_t k) {
  k = std::min<int64_t>(k, logits.size(1));
  at::Tensor top = std::get<1>(logits.topk(k, 1));
  return top.eq(labels.view({-1, 1})).any(1).sum().item<int64_t>();
}

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
  dist::Group* group = opts.group && opts.group->size() > 1 ? opts.group : nullptr;
  const int rank = group ? group->rank() : 0, world = group ? group->size() : 1;
  LoaderOptions lo;
  lo.batch_size = opts.batch_size;
  lo.shuffle = opts.shuffle;
  lo.seed = opts.seed;
  lo.drop_last = opts.drop_last;
  lo.max_samples = opts.max_samples;
  lo.part = rank;
  lo.parts = world;
  DataLoader loader(data, lo);
  if (group) {
    const int64_t last = opts.drop_last ? 0 : loader.num_samples() % opts.batch_size;
    SLIM_CHECK(opts.batch_size >= world && (last == 0 || last >= world), "data parallel over ",
               world, " ranks needs every global batch to hold at least one sample per rank: ",
               opts.batch_size < world ? "the batch size is " + std::to_string(opts.batch_size)
                                       : "the last batch of " + data->describe() + " has " +
                                             std::to_string(last) + " sample(s)",
               " (use a larger --batch, --drop-last or another --max-samples)");
  }

  Executor ex(g);
  ex.set_training(true);
  std::vector<at::Tensor> params;
  for (const auto& name : g.trainable) params.push_back(g.initializers.at(name));
  SLIM_CHECK(!params.empty(), "graph '", g.name, "' has no trainable initializers");
  std::vector<at::Tensor> extra_params;
  if (terms) extra_params = terms->params;
  params.insert(params.end(), extra_params.begin(), extra_params.end());
  std::unique_ptr<torch::optim::Optimizer> optim;
  if (opts.optimizer == OptimizerKind::kMomentum)
    optim = std::make_unique<torch::optim::SGD>(
        params,
        torch::optim::SGDOptions(opts.lr).momentum(opts.momentum).weight_decay(opts.weight_decay));
  else
    optim = std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(opts.lr).weight_decay(opts.weight_decay));

  // Resume: rank 0 reads the checkpoint and hands its bytes to the others through the store.
  std::vector<EpochStats> stats;
  int64_t first_epoch = 0;
  if (!opts.checkpoint.empty()) {
    std::string bytes;
    if (rank == 0 && std::filesystem::exists(opts.checkpoint)) bytes = read_file(opts.checkpoint);
    if (group) {
      if (rank == 0) group->set("train/checkpoint", bytes);
      bytes = group->get("train/checkpoint");
    }
    if (!bytes.empty()) {
      first_epoch = load_checkpoint(opts.checkpoint, bytes, opts.checkpoint_key, &stats, g,
                                    extra_params, *optim, rank == 0 && opts.progress);
      if (first_epoch < 0) {
        first_epoch = 0;
        stats.clear();
      } else if (rank == 0 && opts.progress) {
        std::fprintf(stderr, "resuming from '%s' after epoch %lld of %lld\n",
                     opts.checkpoint.c_str(), static_cast<long long>(first_epoch),
                     static_cast<long long>(opts.epochs));
      }
    }
  }
  std::unique_ptr<dist::GradientAverager> reducer;
  std::optional<dist::SyncBatchNormScope> sync_bn;
  if (group) {
    // Equal starting points (and the checkpoint's) on every rank.
    std::vector<at::Tensor> state;
    for (auto& [name, t] : float_state(g)) state.push_back(t);
    state.insert(state.end(), extra_params.begin(), extra_params.end());
    group->broadcast(state, 0, "the initial weights");
    // Gradients in buckets (1 MB first, then 25 MB, as DDP): each bucket's all-reduce starts
    // as soon as backward has produced it; the result is the average over the ranks.
    reducer = std::make_unique<dist::GradientAverager>(*group, params);
    if (opts.sync_bn) sync_bn.emplace(group);
  }

  const std::string logits_name = logits_value(g);
  const std::string input_name = g.inputs[0].name;
  const int64_t steps_per_epoch = loader.num_batches();
  const int64_t total_steps = steps_per_epoch * opts.epochs;
  int64_t step = first_epoch * steps_per_epoch;
  for (int64_t epoch = first_epoch; epoch < opts.epochs; ++epoch) {
    loader.start_epoch(epoch);
    Progress bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(opts.epochs),
                 steps_per_epoch);
    bar.set_enabled(opts.progress && rank == 0);
    double loss_sum = 0;
    int64_t correct = 0, seen = 0, batches = 0, global_seen = 0;
    double lr = opts.lr;
    Batch b;
    while (loader.next(b)) {
      lr = lr_at(opts, step, steps_per_epoch, total_steps);
      for (auto& pg : optim->param_groups()) pg.options().set_lr(lr);
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
      const int64_t n = b.labels.size(0);
      optim->zero_grad();
      if (reducer) {
        // The reducer averages over ranks; weighting each rank's mean by its share of the
        // global batch makes the result the global batch's mean gradient.
        at::Tensor scaled = loss * (static_cast<double>(world) * static_cast<double>(n) /
                                    static_cast<double>(b.global_size));
        reducer->prepare();
        scaled.backward();
        reducer->finish();
      } else {
        loss.backward();
      }
      optim->step();
      {
        at::NoGradGuard ng;
        double l = loss.item<double>();
        SLIM_CHECK(std::isfinite(l), "training diverged at epoch ", epoch + 1, " step ",
                   batches + 1, " (loss ", l, "); lower the learning rate (now ", lr, ")");
        loss_sum += l * static_cast<double>(n);
        correct += correct_topk(logits.detach(), b.labels, 1);
      }
      seen += n;
      global_seen += group ? b.global_size : n;
      ++batches;
      ++step;
      char info[96];
      std::snprintf(info, sizeof info, "loss %.4f acc %.4f lr %.4g",
                    loss_sum / static_cast<double>(seen),
                    static_cast<double>(correct) / static_cast<double>(seen), lr);
      bar.update(batches, global_seen, info);
    }
    if (group) {
      std::vector<at::Tensor> sums{at::tensor(
          {loss_sum, static_cast<double>(correct), static_cast<double>(seen)}, at::kDouble)};
      group->all_reduce_sum(sums, "the epoch's statistics");
      loss_sum = sums[0][0].item<double>();
      correct = static_cast<int64_t>(sums[0][1].item<double>());
      seen = static_cast<int64_t>(sums[0][2].item<double>());
      if (!opts.sync_bn) {
        // Per-rank BatchNormalization statistics: rank 0's go to all (as DDP's buffers).
        std::vector<at::Tensor> buffers;
        for (auto& [name, t] : float_state(g))
          if (!t.requires_grad()) buffers.push_back(t);
        group->broadcast(buffers, 0, "the BatchNormalization statistics");
      }
    }
    EpochStats st;
    st.epoch = epoch + 1;
    st.samples = seen;
    st.train_loss = loss_sum / static_cast<double>(std::max<int64_t>(1, seen));
    st.train_top1 = static_cast<double>(correct) / static_cast<double>(std::max<int64_t>(1, seen));
    st.lr = lr;
    st.seconds = bar.elapsed_s();
    char info[96];
    std::snprintf(info, sizeof info, "loss %.4f acc %.4f", st.train_loss, st.train_top1);
    bar.finish(info);
    stats.push_back(st);
    if (!opts.checkpoint.empty() && rank == 0 && epoch + 1 < opts.epochs)
      save_checkpoint(opts.checkpoint, opts.checkpoint_key, epoch + 1, stats, g, extra_params,
                      *optim);
  }
  ex.set_training(false);
  return stats;
}

/// Removes a finished run's checkpoint (the caller does, once the result is saved).
void remove_checkpoint(const TrainOptions& opts) {
  if (opts.checkpoint.empty()) return;
  if (opts.group && opts.group->rank() != 0) return;
  std::error_code ec;
  std::filesystem::remove(opts.checkpoint, ec);
}

EvalResult evaluate(Graph& g, const std::shared_ptr<Dataset>& data, const EvalOptions& opts) {
  check_fits(g, *data);
  set_num_threads(opts.threads);
  LoaderOptions lo;
  lo.batch_size = opts.batch_size;
  lo.shuffle = false;
  lo.max_samples = opts.max_samples;
  dist::Group* group = opts.group && opts.group->size() > 1 ? opts.group : nullptr;
  std::shared_ptr<Dataset> part = data;
  if (group) {
    // Each rank evaluates a contiguous part of the samples; the sums are reduced below.
    const int64_t n = DataLoader(data, lo).num_samples();
    auto [begin, end] = dist::split_range(n, group->rank(), group->size());
    std::vector<int64_t> idx(static_cast<size_t>(end - begin));
    std::iota(idx.begin(), idx.end(), begin);
    part = dataset_subset(data, std::move(idx), data->describe());
    lo.max_samples = 0;
  }
  DataLoader loader(part, lo);
  loader.start_epoch(0);
  Executor ex(g);
  ex.set_training(false);
  const std::string logits_name = logits_value(g);
  const std::string input_name = g.inputs[0].name;
  Progress bar("eval", loader.num_batches());
  bar.set_enabled(opts.progress && (!group || group->rank() == 0));
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
  if (group) {
    std::vector<at::Tensor> sums{
        at::tensor({loss_sum, static_cast<double>(top1), static_cast<double>(top5),
                    static_cast<double>(r.samples)},
                   at::kDouble)};
    group->all_reduce_sum(sums, "evaluation");
    loss_sum = sums[0][0].item<double>();
    top1 = static_cast<int64_t>(sums[0][1].item<double>());
    top5 = static_cast<int64_t>(sums[0][2].item<double>());
    r.samples = static_cast<int64_t>(sums[0][3].item<double>());
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
