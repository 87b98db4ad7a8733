#pragma once
// Each `slim` subcommand registers itself on the app; the callbacks are thin: parse flags into an
// options struct and call one library function.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "slim/data/dataset.h"
#include "slim/ir/graph.h"
#include "slim/train/trainer.h"

namespace slim::cli {

void add_info(CLI::App& app);
void add_flops(CLI::App& app);
void add_run(CLI::App& app);
void add_bench(CLI::App& app);
void add_zoo(CLI::App& app);
void add_train(CLI::App& app);
void add_eval(CLI::App& app);
void add_prune(CLI::App& app);
void add_sensitivity(CLI::App& app);
void add_ratios(CLI::App& app);
void add_distill(CLI::App& app);
void add_quant(CLI::App& app);
void add_nas(CLI::App& app);
void add_latency_table(CLI::App& app);

/// Loads a model (onnx_load, or load_for_analysis with `input_shapes` for the commands that
/// count or prune) and says in one line on stderr when its opset was upgraded.
Graph load_model(const std::string& path);
Graph load_model_for_analysis(const std::string& path, const std::string& input_shapes = "");

/// How folder images are read for a model (`--image-size`, `--mean`, `--std`,
/// `--channel-order`; tools/data_flags.cc): every command that reads data takes them.
struct ImageFlags {
  std::string size, mean, std, order = "rgb";
  /// The model's input size and channel count where it fixes them (else 224x224 RGB), with
  /// these flags applied. Errors name the flag and the value.
  FolderOptions for_model(const Graph& g) const;
};
void add_image_flags(CLI::App* cmd, ImageFlags* f);
/// open_dataset(spec, split, flags.for_model(g)); with `labels` (training, evaluation), an error
/// if the model's [N, K] output does not have one column per class of the data. Calibration
/// reads images only: any class count.
std::shared_ptr<Dataset> open_data(const std::string& spec, Split split, const Graph& g,
                                   const ImageFlags& flags, bool labels = true);

/// For commands that feed batches: a model whose inputs fix the batch at 1 gets a symbolic
/// batch (relax_batch, checked at batch 2), saying so in one line. Returns false, after saying
/// so, when that cannot be done safely: the caller then runs in batches of 1.
bool allow_batches(Graph& g, const std::string& path);

/// Adds --threads (LibTorch intra-op threads; 0 = all cores) and applies it before the command.
void add_threads_option(CLI::App* cmd, int* threads);

/// The training flags shared by `slim train` and `slim distill` (epochs, batch, lr, optimizer,
/// schedule, seed, shuffling, threads).
struct TrainFlags {
  TrainOptions opts;
  std::string optimizer = "momentum", schedule = "constant";
  /// opts with the optimizer and schedule names applied.
  TrainOptions resolved() const;
};
void add_train_flags(CLI::App* cmd, TrainFlags* f);
/// {"epoch", "train_loss", "train_top1", "samples", "seconds"} per epoch.
nlohmann::json epochs_json(const std::vector<EpochStats>& stats);
/// {"top1", "top5", "loss", "samples", "seconds"}.
nlohmann::json eval_json(const EvalResult& r);

}  // namespace slim::cli
