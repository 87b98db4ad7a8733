#pragma once
// Each `slim` subcommand registers itself on the app; the callbacks are thin: parse flags into an
// options struct and call one library function.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "slim/data/model_data.h"
#include "slim/ir/graph.h"
#include "slim/train/results_json.h"
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
void add_compress(CLI::App& app);
void add_launch(CLI::App& app);

/// The command line after `slim` (main sets it): distributed ranks compare it, training keys its
/// checkpoint with it.
void set_command_args(std::vector<std::string> args);
const std::vector<std::string>& command_args();
/// True on the rank that prints and writes files: rank 0, or the only process.
bool lead_rank();
/// What a training checkpoint belongs to: the command line without --threads and the output
/// (so a rerun with other threads or ranks resumes it).
std::string checkpoint_key();

/// Loads a model (onnx_load, or load_for_analysis with `input_shapes` for the commands that
/// count or prune) and says in one line on stderr when its opset was upgraded.
Graph load_model(const std::string& path);
Graph load_model_for_analysis(const std::string& path, const std::string& input_shapes = "");

/// How folder images are read for a model (`--image-size`, `--mean`, `--std`,
/// `--channel-order`): every command that reads data takes them (slim/data/model_data.h).
using ImageFlags = ImageOptions;
void add_image_flags(CLI::App* cmd, ImageFlags* f);

/// Adds --threads (LibTorch intra-op threads; 0 = all cores) and applies it before the command.
void add_threads_option(CLI::App* cmd, int* threads);

/// The training flags shared by `slim train` and `slim distill` (epochs, batch, lr, optimizer,
/// schedule, seed, shuffling, threads).
struct TrainFlags {
  TrainOptions opts;
  std::string optimizer = "momentum", schedule = "constant";
  /// opts with the optimizer and schedule names applied, the distributed group (if any) and
  /// progress on the lead rank only.
  TrainOptions resolved() const;
  /// Training state file of a run writing `output`: `output`.ckpt unless --no-checkpoint.
  std::string checkpoint_for(const std::string& output) const;
  bool no_checkpoint = false;
};
void add_train_flags(CLI::App* cmd, TrainFlags* f);

/// Checks an output file's path when the flags are read, not after the work: its folder must
/// exist and the path must not be a folder. (No description: --help stays as it was.)
const CLI::Validator& output_file();

/// CLI11's PositiveNumber and NonNegativeNumber with messages a user can read (theirs print the
/// largest double in full); --help shows the same POSITIVE / NONNEGATIVE.
const CLI::Validator& positive();
const CLI::Validator& non_negative();

}  // namespace slim::cli
