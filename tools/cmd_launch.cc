// slim launch
#include <cstdlib>

#include "commands.h"
#include "slim/dist/dist.h"
#include "slim/dist/launch.h"

namespace slim::cli {

namespace {
std::vector<std::string>& args_store() {
  static std::vector<std::string> a;
  return a;
}
}  // namespace

void set_command_args(std::vector<std::string> args) { args_store() = std::move(args); }
const std::vector<std::string>& command_args() { return args_store(); }
std::string checkpoint_key() {
  std::string key;
  const auto& a = command_args();
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] == "--threads") {
      ++i;
      continue;
    }
    if (a[i].rfind("--threads=", 0) == 0) continue;
    key += a[i] + "\n";
  }
  return key;
}

bool lead_rank() { return dist::current() == nullptr || dist::current()->rank() == 0; }

void add_launch(CLI::App& app) {
  auto o = std::make_shared<dist::LaunchOptions>();
  auto* cmd = app.add_subcommand(
      "launch",
      "Run a command on several ranks (torch c10d, Gloo): slim launch --nproc 2 -- slim train ...");
  cmd->add_option("--nproc", o->nproc, "ranks on this node")->check(positive());
  cmd->add_option("--nnodes", o->nnodes, "nodes in the run")->check(positive());
  cmd->add_option("--node-rank", o->node_rank, "this node's index (node 0 hosts the store)")
      ->check(non_negative());
  cmd->add_option("--master-addr", o->master_addr, "address of node 0");
  cmd->add_option("--master-port", o->master_port,
                  "port of node 0's store (default: a free port with one node, 29500 with "
                  "several)");
  cmd->add_option("--timeout", o->timeout_s,
                  "seconds a rank waits for the others (start, collectives) before it stops "
                  "naming the rank it lost")
      ->check(positive());
  cmd->add_option("--threads", o->threads, "threads per rank (0 = this machine's cores / --nproc)")
      ->check(non_negative());
  cmd->add_option("command", o->command, "the command each rank runs, after --")->required();
  cmd->positionals_at_end();
  cmd->callback([o] { std::exit(dist::launch(*o)); });
}

}  // namespace slim::cli
