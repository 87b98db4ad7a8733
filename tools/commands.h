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
  /// opts with the optimizer and schedule names applied.
  TrainOptions resolved() const;
};
void add_train_flags(CLI::App* cmd, TrainFlags* f);

}  // namespace slim::cli
