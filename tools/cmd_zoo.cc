// slim zoo
#include <iostream>

#include "commands.h"
#include "slim/exec/infer_shapes.h"
#include "slim/onnx/onnx_io.h"
#include "slim/zoo/zoo.h"

namespace slim::cli {

namespace {
struct ZooArgs {
  std::string name, input, output;
  ZooOptions opts;
  bool list = false;
};
}  // namespace

void add_zoo(CLI::App& app) {
  auto args = std::make_shared<ZooArgs>();
  auto* cmd = app.add_subcommand(
      "zoo", "Write a freshly initialised model from the zoo (PaddleSlim's names) as ONNX");
  cmd->add_option("name", args->name, "model name (see --list)");
  cmd->add_option("--input", args->input, "input shape C,H,W (default 1,28,28)");
  cmd->add_option("--classes", args->opts.classes, "number of classes (default 10)");
  cmd->add_option("--scale", args->opts.scale, "width multiplier, MobileNets only (default 1)");
  cmd->add_option("--seed", args->opts.seed, "seed of the weight initialisation (default 0)");
  cmd->add_option("-o,--output", args->output, "ONNX file to write")->check(output_file());
  cmd->add_flag("--list", args->list, "list the models");
  cmd->callback([args] {
    if (args->list) {
      for (const auto& n : zoo_names()) std::cout << n << "  " << zoo_describe(n) << "\n";
      return;
    }
    SLIM_CHECK(!args->name.empty(), "zoo: give a model name (one of --list)");
    SLIM_CHECK(!args->output.empty(), "zoo: give the output file with -o");
    if (!args->input.empty()) {
      auto shapes = parse_input_shapes(args->input);
      SLIM_CHECK(shapes.size() == 1, "--input '", args->input,
                 "': the zoo's models have one input");
      args->opts.input = shapes[0];
    }
    onnx_save(zoo_build(args->name, args->opts), args->output);
  });
}

}  // namespace slim::cli
