#include "slim/dist/launch.h"

#include <c10/util/Exception.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "slim/dist/dist.h"
#include "slim/ir/error.h"

namespace slim::dist {

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<int> pending_signal{0};
std::atomic<int> signals_seen{0};

void on_signal(int sig) {
  pending_signal = sig;
  ++signals_seen;
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = sigabbrev_np(sig);
    return "was killed by signal " + std::to_string(sig) +
           (name ? std::string(" (SIG") + name + ")" : "");
  }
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

int exit_code(int status) {
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

}  // namespace

int launch(const LaunchOptions& o) {
  SLIM_CHECK(o.nproc >= 1, "launch: --nproc ", o.nproc, " must be >= 1");
  SLIM_CHECK(o.nnodes >= 1, "launch: --nnodes ", o.nnodes, " must be >= 1");
  SLIM_CHECK(o.node_rank >= 0 && o.node_rank < o.nnodes, "launch: --node-rank ", o.node_rank,
             " must be in [0, ", o.nnodes, ")");
  SLIM_CHECK(o.timeout_s > 0, "launch: --timeout ", o.timeout_s, " must be > 0 seconds");
  SLIM_CHECK(!o.command.empty(),
             "launch: no command; write it after --, e.g. slim launch --nproc 2 -- slim train ...");
  SLIM_CHECK(o.master_port >= -1 && o.master_port <= 65535, "launch: --master-port ", o.master_port,
             " is not a TCP port");
  const int world = o.nproc * o.nnodes;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000));
  int port = o.master_port >= 0 ? o.master_port : (o.nnodes == 1 ? 0 : 29500);
  SLIM_CHECK(port != 0 || o.nnodes == 1,
             "launch: --master-port 0 (any free port) works with one node only");

  quiet_c10d_logging();
  // The run's store, as torchrun's agent hosts it: it outlives any rank, so a dead rank's
  // failure can still be read by the others.
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(port);
    so.isServer = o.node_rank == 0;
    so.waitWorkers = false;
    so.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
    port = tcp->getPort();
    store = c10::make_intrusive<c10d::PrefixStore>("slim/0/", tcp);
  } catch (const std::exception& e) {
    const std::string what = error_brief(e);
    if (o.node_rank == 0)
      SLIM_FAIL("launch: cannot host the store on ", o.master_addr, ":", port, ": ", what);
    SLIM_FAIL("launch: cannot reach node 0's store at ", o.master_addr, ":", port, " within ",
              o.timeout_s, " s: ", what);
  }

  std::string exe = o.command[0];
  if (exe == "slim") exe = std::filesystem::read_symlink("/proc/self/exe").string();
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const int threads = o.threads > 0 ? o.threads : std::max(1, static_cast<int>(cores) / o.nproc);

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);

  std::vector<pid_t> pids(o.nproc, -1);
  std::vector<bool> running(o.nproc, false);
  for (int local = 0; local < o.nproc; ++local) {
    const int rank = o.node_rank * o.nproc + local;
    pid_t pid = fork();
    SLIM_CHECK(pid >= 0, "launch: fork failed: ", std::strerror(errno));
    if (pid == 0) {
      for (int sig : {SIGINT, SIGTERM, SIGHUP}) signal(sig, SIG_DFL);
      // A launcher that is killed outright (it cannot forward SIGKILL) takes its ranks along.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() == 1) _exit(1);
      auto put = [](const char* k, const std::string& v) { setenv(k, v.c_str(), 1); };
      put("RANK", std::to_string(rank));
      put("WORLD_SIZE", std::to_string(world));
      put("LOCAL_RANK", std::to_string(local));
      put("LOCAL_WORLD_SIZE", std::to_string(o.nproc));
      put("GROUP_RANK", std::to_string(o.node_rank));
      put("MASTER_ADDR", o.master_addr);
      put("MASTER_PORT", std::to_string(port));
      put("TORCHELASTIC_USE_AGENT_STORE", "True");
      put("TORCHELASTIC_RESTART_COUNT", "0");
      put("SLIM_DIST_TIMEOUT", std::to_string(o.timeout_s));
      put("OMP_NUM_THREADS", std::to_string(threads));
      put("SLIM_THREADS", std::to_string(threads));
      std::vector<char*> argv;
      for (const auto& a : o.command) argv.push_back(const_cast<char*>(a.c_str()));
      argv[0] = const_cast<char*>(exe.c_str());
      argv.push_back(nullptr);
      execvp(exe.c_str(), argv.data());
      std::fprintf(stderr, "slim launch: cannot run '%s': %s\n", exe.c_str(), std::strerror(errno));
      _exit(127);
    }
    pids[local] = pid;
    running[local] = true;
  }

  int first_failure = 0;
  int alive = o.nproc;
  Clock::time_point stop_by{}, kill_by{};
  bool terminated = false;
  while (alive > 0) {
    if (int sig = pending_signal.exchange(0)) {
      // Forward; a second interrupt ends the ranks at once.
      const char* name = sigabbrev_np(sig);
      std::fprintf(stderr, "slim launch: SIG%s: %s the ranks\n", name ? name : "?",
                   signals_seen > 1 ? "killing" : "passing it to");
      for (int l = 0; l < o.nproc; ++l)
        if (running[l]) kill(pids[l], signals_seen > 1 ? SIGKILL : sig);
      if (!first_failure) first_failure = 128 + sig;
    }
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      int local = -1;
      for (int l = 0; l < o.nproc; ++l)
        if (pids[l] == pid) local = l;
      if (local < 0) continue;
      running[local] = false;
      --alive;
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok && !first_failure) {
        first_failure = exit_code(status);
        const int rank = o.node_rank * o.nproc + local;
        const std::string msg = "rank " + std::to_string(rank) + " (pid " + std::to_string(pid) +
                                ") " + describe_status(status);
        std::fprintf(stderr, "slim launch: %s; the other ranks stop\n", msg.c_str());
        try {
          // A rank that failed by itself has said why; the launcher adds what only it sees.
          if (!store->check({"failed/" + std::to_string(rank)}))
            store->set("failed/" + std::to_string(rank), bytes(msg));
          if (!store->check({"abort"})) store->set("abort", bytes(msg));
        } catch (const std::exception&) {
        }
        // The others stop within seconds: at their next collective, or by their watchdog,
        // which polls the store for this failure every second.
        stop_by = Clock::now() +
                  std::min<std::chrono::milliseconds>(timeout, std::chrono::milliseconds(15000));
      }
      continue;
    }
    const auto now = Clock::now();
    if (stop_by != Clock::time_point{} && now > stop_by && !terminated) {
      std::fprintf(stderr, "slim launch: terminating the %d rank(s) still running\n", alive);
      for (int l = 0; l < o.nproc; ++l)
        if (running[l]) kill(pids[l], SIGTERM);
      terminated = true;
      kill_by = now + std::chrono::seconds(5);
    }
    if (terminated && now > kill_by)
      for (int l = 0; l < o.nproc; ++l)
        if (running[l]) kill(pids[l], SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Node 0 hosts the store: other nodes' ranks may still need it.
  if (o.nnodes > 1 && o.node_rank == 0 && !first_failure) {
    const auto until = Clock::now() + timeout;
    try {
      while (Clock::now() < until && store->add("left", 0) < world && !store->check({"abort"}))
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    } catch (const std::exception&) {
    }
  }
  return first_failure;
}

}  // namespace slim::dist
