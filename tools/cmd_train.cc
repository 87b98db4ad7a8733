// slim train | eval
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "slim/dist/dist.h"
#include "slim/onnx/onnx_io.h"
#include "slim/passes/reset_head.h"
#include "slim/train/trainer.h"

namespace slim::cli {

namespace {

struct TrainArgs {
  std::string model, data, out;
  ImageFlags image;
  bool reset_head = false;
  TrainFlags flags;
  bool json = false, no_eval = false;
  int64_t eval_batch = 256;
};

struct EvalArgs {
  std::string model, data;
  ImageFlags image;
  EvalOptions opts;
  bool json = false;
};

}  // namespace

TrainOptions TrainFlags::resolved() const {
  TrainOptions o = opts;
  o.optimizer = optimizer_from_string(optimizer);
  o.schedule = lr_schedule_from_string(schedule);
  o.group = dist::current();
  o.progress = o.progress && lead_rank();
  SLIM_CHECK(!o.sync_bn || o.group,
             "--sync-bn needs a distributed run (slim launch --nproc N "
             "-- slim ...); one process already uses the whole batch");
  return o;
}

std::string TrainFlags::checkpoint_for(const std::string& output) const {
  return no_checkpoint ? "" : output + ".ckpt";
}

void add_train_flags(CLI::App* cmd, TrainFlags* f) {
  cmd->add_option("--epochs", f->opts.epochs, "epochs")->check(positive());
  cmd->add_option("--batch", f->opts.batch_size, "batch size")->check(positive());
  cmd->add_option("--lr", f->opts.lr, "learning rate")->check(positive());
  cmd->add_option("--optimizer", f->optimizer, "momentum (SGD with momentum) or adam")
      ->check(CLI::IsMember({"momentum", "adam"}));
  cmd->add_option("--momentum", f->opts.momentum, "momentum");
  cmd->add_option("--weight-decay", f->opts.weight_decay, "L2 weight decay")->check(non_negative());
  cmd->add_option("--lr-schedule", f->schedule, "constant, piecewise or cosine")
      ->check(CLI::IsMember({"constant", "piecewise", "cosine"}));
  cmd->add_option("--boundaries", f->opts.boundaries, "piecewise: epoch boundaries")
      ->delimiter(',');
  cmd->add_option("--values", f->opts.values, "piecewise: learning rates (one more)")
      ->delimiter(',');
  cmd->add_option("--seed", f->opts.seed, "random seed (shuffling, dropout)");
  cmd->add_option("--max-samples", f->opts.max_samples, "train on the first N samples only")
      ->check(non_negative());
  cmd->add_flag("!--no-shuffle", f->opts.shuffle,
                "keep the file order (PaddleSlim's tutorial reader) instead of reshuffling");
  cmd->add_flag("--drop-last", f->opts.drop_last, "skip a last batch smaller than --batch");
  cmd->add_flag("--sync-bn", f->opts.sync_bn,
                "distributed: BatchNormalization statistics over the global batch (default: "
                "each rank's part)");
  cmd->add_flag("--no-checkpoint", f->no_checkpoint,
                "do not keep OUTPUT.ckpt after each epoch (a killed run then starts over)");
  add_threads_option(cmd, &f->opts.threads);
}

void add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "Train a model (cross-entropy) and save it as ONNX");
  cmd->add_option("model", a->model, "ONNX file to start from")->required();
  cmd->add_option("--data", a->data, "dataset: mnist:DIR, fashion:DIR or folder:DIR")->required();
  cmd->add_option("-o,--output", a->out, "trained ONNX file (written atomically)")
      ->required()
      ->check(output_file());
  add_image_flags(cmd, &a->image);
  cmd->add_flag("--reset-head", a->reset_head,
                "replace the final fully-connected layer with a new one for the data's classes "
                "(fine-tuning on data with another class count)");
  add_train_flags(cmd, &a->flags);
  cmd->add_option("--eval-batch", a->eval_batch, "batch size of the final evaluation")
      ->check(positive());
  cmd->add_flag("--no-eval", a->no_eval, "skip evaluating on the test split after training");
  cmd->add_flag("--json", a->json, "print one JSON object with the results");
  cmd->callback([a] {
    TrainOptions opts = a->flags.resolved();
    Graph g = load_model(a->model);
    if (!allow_batches(g, a->model)) opts.batch_size = 1, a->eval_batch = 1;
    // With --reset-head the classes are checked against the new head (the test split's below).
    auto train_set = open_data(a->data, Split::kTrain, g, a->image, !a->reset_head);
    if (a->reset_head) {
      const int64_t classes = train_set->num_classes();
      const std::string fc = reset_head(g, classes, opts.seed);
      std::fprintf(stderr, "note: %s: final layer '%s' replaced for %lld classes\n",
                   a->model.c_str(), fc.c_str(), static_cast<long long>(classes));
    }
    opts.checkpoint = a->flags.checkpoint_for(a->out);
    opts.checkpoint_key = checkpoint_key();
    auto stats = train(g, train_set, opts);
    if (lead_rank()) onnx_save(g, a->out);
    remove_checkpoint(opts);
    nlohmann::json j;
    j["output"] = a->out;
    j["epochs"] = epochs_json(stats);
    if (!a->no_eval) {
      EvalOptions eo;
      eo.batch_size = a->eval_batch;
      eo.threads = opts.threads;
      eo.progress = opts.progress;
      eo.group = opts.group;
      j["eval"] = eval_json(evaluate(g, open_data(a->data, Split::kTest, g, a->image), eo));
    }
    if (a->json) {
      std::cout << j.dump() << "\n";
    } else {
      std::cout << "saved " << a->out << "\n";
      if (j.contains("eval"))
        std::printf("test top1 %.4f top5 %.4f loss %.4f (%lld samples)\n",
                    j["eval"]["top1"].get<double>(), j["eval"]["top5"].get<double>(),
                    j["eval"]["loss"].get<double>(),
                    static_cast<long long>(j["eval"]["samples"].get<int64_t>()));
    }
  });
}

void add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "Top-1/top-5 accuracy and loss on a test split");
  cmd->add_option("model", a->model, "ONNX file")->required();
  cmd->add_option("--data", a->data, "dataset: mnist:DIR, fashion:DIR or folder:DIR")->required();
  add_image_flags(cmd, &a->image);
  cmd->add_option("--batch", a->opts.batch_size, "batch size")->check(positive());
  cmd->add_option("--max-samples", a->opts.max_samples, "evaluate the first N samples only")
      ->check(non_negative());
  cmd->add_flag("--json", a->json, "print one JSON object");
  add_threads_option(cmd, &a->opts.threads);
  cmd->callback([a] {
    Graph g = load_model(a->model);
    if (!allow_batches(g, a->model)) a->opts.batch_size = 1;
    a->opts.group = dist::current();
    a->opts.progress = a->opts.progress && lead_rank();
    EvalResult r = evaluate(g, open_data(a->data, Split::kTest, g, a->image), a->opts);
    if (a->json)
      std::cout << eval_json(r).dump() << "\n";
    else
      std::printf("top1 %.4f top5 %.4f loss %.4f (%lld samples, %.1f s)\n", r.top1, r.top5, r.loss,
                  static_cast<long long>(r.samples), r.seconds);
  });
}

}  // namespace slim::cli
