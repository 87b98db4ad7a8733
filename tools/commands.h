#pragma once
// Each `slim` subcommand registers itself on the app; the callbacks are thin: parse flags into an
// options struct and call one library function.
#include <CLI/CLI.hpp>

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

/// Adds --threads (LibTorch intra-op threads; 0 = all cores) and applies it before the command.
void add_threads_option(CLI::App* cmd, int* threads);

}  // namespace slim::cli
