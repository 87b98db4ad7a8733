#pragma once
/// `slim launch`: starts a node's ranks with torchrun's environment, hosts the run's store on
/// node 0 (as torchrun's agent does), forwards SIGINT/SIGTERM/SIGHUP to the ranks, and when a
/// rank dies records which one in the store, so the others stop naming it; ranks still running
/// after the timeout are terminated.
#include <string>
#include <vector>

namespace slim::dist {

struct LaunchOptions {
  int nproc = 1;      ///< ranks on this node
  int nnodes = 1;     ///< nodes in the run
  int node_rank = 0;  ///< this node's index; node 0 hosts the store
  std::string master_addr = "127.0.0.1";
  int master_port = -1;  ///< -1: a free port with one node, 29500 (torchrun's) with several
  double timeout_s = 300;
  int threads = 0;                   ///< per rank; 0 = this machine's cores / nproc
  std::vector<std::string> command;  ///< "slim ..." runs this binary
};

/// Runs the ranks to the end; returns 0 if all succeeded, else the first failure's exit status
/// (128 + signal for a rank killed by a signal). Errors (slim::Error) on bad options.
int launch(const LaunchOptions& opts);

}  // namespace slim::dist
