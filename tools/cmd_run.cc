// slim run
#include <iostream>

#include "commands.h"
#include "slim/data/npy.h"
#include "slim/exec/executor.h"
#include "slim/onnx/onnx_io.h"

namespace slim::cli {

namespace {
struct RunArgs {
  std::string model;
  std::vector<std::string> in, out;
  int threads = 0;
};
}  // namespace

void add_run(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("run", "Run a model on NumPy .npy inputs, write .npy outputs");
  cmd->add_option("model", args->model, "ONNX file")->required();
  cmd->add_option("--in", args->in, "input .npy, one per graph input in order")->required();
  cmd->add_option("--out", args->out, "output .npy, one per graph output in order")->required();
  add_threads_option(cmd, &args->threads);
  cmd->callback([args] {
    set_num_threads(args->threads);
    Graph g = load_model(args->model);
    SLIM_CHECK(args->in.size() == g.inputs.size(), args->model, " has ", g.inputs.size(),
               " input(s), got ", args->in.size(), " --in file(s)");
    SLIM_CHECK(args->out.size() <= g.outputs.size(), args->model, " has ", g.outputs.size(),
               " output(s), got ", args->out.size(), " --out file(s)");
    std::vector<at::Tensor> xs;
    for (const auto& p : args->in) xs.push_back(npy_load(p));
    Executor ex(g);
    ex.set_release_weights(true);  // one run: packed int8 weights need not stay in the graph
    std::vector<at::Tensor> ys;
    try {
      ys = ex.run(xs);
    } catch (const Error& e) {
      SLIM_FAIL(args->model, ": ", e.what());
    }
    for (size_t i = 0; i < args->out.size(); ++i) npy_save(ys[i], args->out[i]);
  });
}

}  // namespace slim::cli
