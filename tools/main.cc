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

/// `app`'s help and its subcommands', recursively; `parent` is the path of the command above.
void print_help_all(CLI::App& app, const std::string& parent) {
  const std::string path = parent.empty() ? app.get_name() : parent + " " + app.get_name();
  std::printf("\x1e%s\n%s", path.c_str(), app.help(parent).c_str());
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    print_help_all(*sub, path);
}

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
  // Every command's --help in one process, each after a line "\x1e<command path>": the command
  // reference (scripts/check_docs.py) is built from it without paying LibTorch's start-up once
  // per command. Not listed in --help; meant for tools.
  if (argc == 2 && std::string(argv[1]) == "--help-all") {
    app.name("slim");
    print_help_all(app, "");
    return 0;
  }
  slim::cli::set_command_args(std::vector<std::string>(argv + 1, argv + argc));
  try {
    join_if_distributed(argc, argv);
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help, --version
      const int code = app.exit(e);
      slim::dist::set_current(nullptr);
      return code;
    }
    // One line like every other error; exit status 64 (EX_USAGE of sysexits.h), apart from the
    // 1 of bad input and the 2 of an internal error.
    std::string what = e.what();
    if (argc >= 2 && argv[1][0] != '-' && what == "A subcommand is required") {
      std::string names;
      for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
        names += (names.empty() ? "" : ", ") + sub->get_name();
      what = "unknown command '" + std::string(argv[1]) + "' (commands: " + names + ")";
    }
    return fail("slim: error: " + what + " (see --help)", 64);
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
