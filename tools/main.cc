// `slim`: the command-line front end. Errors are caught once here: one clear line, non-zero exit.
#include <c10/util/Exception.h>

#include <iostream>

#include "commands.h"
#include "slim/ir/error.h"

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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const slim::Error& e) {
    std::cerr << "slim: error: " << e.what() << "\n";
    return 1;
  } catch (const slim::InternalError& e) {
    std::cerr << "slim: " << e.what() << " (please report this)\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "slim: error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "slim: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
