// `slim`: the command-line front end. Errors are caught once here: one clear line, non-zero exit.
#include <c10/util/Exception.h>

#include <iostream>

#include "commands.h"
#include "slim/dist/dist.h"
#include "slim/ir/error.h"

namespace {

/// Commands that split their work over the ranks of a distributed run.
bool runs_distributed(int argc, char** argv) {
  const std::string a = argc > 1 ? argv[1] : "", b = argc > 2 ? argv[2] : "";
  return a == "train" || a == "eval" || a == "distill" || a == "sensitivity" ||
         (a == "quant" && b == "qat") || (a == "nas" && b != "spaces" && b != "export");
}

/// In a distributed run (torchrun's variables set): joins the other ranks; ranks other than 0
/// print nothing on stdout (rank 0 prints the results).
void join_if_distributed(int argc, char** argv) {
  slim::dist::Env env = slim::dist::env_from();
  if (!env.active) return;
  const std::string cmd = argc > 1 ? argv[1] : "";
  SLIM_CHECK(cmd != "launch", "slim launch inside a distributed run (RANK=", env.rank,
             ", WORLD_SIZE=", env.world_size, "): launch once, outside");
  const bool has_sub = cmd == "quant" || cmd == "nas";  // commands with subcommands
  SLIM_CHECK(runs_distributed(argc, argv), "'slim ", cmd,
             (has_sub && argc > 2 ? std::string(" ") + argv[2] : ""),
             "' does not run distributed, but RANK=", env.rank, " and WORLD_SIZE=", env.world_size,
             " are set; the distributed commands are train, eval, distill, "
             "quant qat, sensitivity and nas (the search)");
  auto group = slim::dist::Group::join(env, slim::dist::identity_of(slim::cli::command_args()));
  slim::dist::set_current(group);
  if (env.rank != 0 && !std::freopen("/dev/null", "w", stdout))
    SLIM_FAIL("rank ", env.rank, ": cannot silence stdout");
}

/// Tells the other ranks why this one stops, and leaves the run.
int fail(const std::string& line, int code, bool print = true) {
  if (print) std::cerr << line << "\n";
  if (auto* g = slim::dist::current()) {
    g->report_failure(line.substr(line.find(": ") + 2));
    slim::dist::set_current(nullptr);
  }
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Slim: compress ONNX models (prune, quantize, distill, search) and measure them"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "slim 0.1.0");
  slim::cli::add_info(app);
  slim::cli::add_flops(app);
  slim::cli::add_run(app);
  slim::cli::add_bench(app);
  slim::cli::add_zoo(app);
  slim::cli::add_train(app);
  slim::cli::add_eval(app);
  slim::cli::add_prune(app);
  slim::cli::add_sensitivity(app);
  slim::cli::add_ratios(app);
  slim::cli::add_distill(app);
  slim::cli::add_quant(app);
  slim::cli::add_nas(app);
  slim::cli::add_latency_table(app);
  slim::cli::add_compress(app);
  slim::cli::add_launch(app);
  slim::cli::set_command_args(std::vector<std::string>(argv + 1, argv + argc));
  try {
    join_if_distributed(argc, argv);
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    if (code != 0) return fail("slim: error: " + std::string(e.what()), code, /*print=*/false);
    slim::dist::set_current(nullptr);
    return code;
  } catch (const slim::Error& e) {
    return fail("slim: error: " + std::string(e.what()), 1);
  } catch (const slim::InternalError& e) {
    return fail("slim: " + std::string(e.what()) + " (please report this)", 2);
  } catch (const c10::Error& e) {
    return fail(std::string("slim: error: ") + e.what_without_backtrace(), 1);
  } catch (const std::exception& e) {
    return fail("slim: error: " + std::string(e.what()), 1);
  }
  slim::dist::set_current(nullptr);
  return 0;
}
