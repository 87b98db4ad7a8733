// Distributed runs end to end, on loopback with one thread per rank: `slim launch`, data-parallel
// train and eval, sensitivity and NAS over ranks, lost and hung ranks, bad launches.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "slim/dist/dist.h"
#include "slim/onnx/onnx_io.h"
#include "slim/zoo/zoo.h"
#include "test_util.h"
#include "trained_models.h"

namespace slim {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string mnist() { return "mnist:" + test::data_dir("mnist"); }
std::string slim_cmd() { return test::quote(test::slim_bin()); }
std::string launch2() { return slim_cmd() + " launch --nproc 2 --threads 1 -- slim "; }

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// A TCP port nothing listens on right now (bound on loopback, then released).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

/// How far apart two trained models are, per initializer that training moved:
/// ||a - b|| / ||a - init||. worst over initializers, and the median.
struct Drift {
  double worst = 0, median = 0;
  std::string worst_name;
};

Drift drift(const std::string& a_path, const std::string& b_path, const std::string& init_path) {
  Graph a = onnx_load(a_path), b = onnx_load(b_path), init = onnx_load(init_path);
  std::vector<double> r;
  Drift d;
  for (const auto& [name, t] : a.initializers) {
    if (!t.is_floating_point()) continue;
    const double moved = (t - init.initializers.at(name)).to(at::kDouble).norm().item<double>();
    if (moved == 0) continue;
    const double x = (t - b.initializers.at(name)).to(at::kDouble).norm().item<double>() / moved;
    r.push_back(x);
    if (x >= d.worst) d.worst = x, d.worst_name = name;
  }
  EXPECT_FALSE(r.empty()) << a_path << " did not move from " << init_path;
  std::sort(r.begin(), r.end());
  d.median = r.empty() ? 0 : r[r.size() / 2];
  return d;
}

/// Environment of rank `rank` of `world` on loopback (what slim launch sets, by hand).
std::string rank_env(int rank, int world, int port, double timeout_s) {
  return "RANK=" + std::to_string(rank) + " WORLD_SIZE=" + std::to_string(world) +
         " LOCAL_RANK=" + std::to_string(rank) + " LOCAL_WORLD_SIZE=" + std::to_string(world) +
         " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) +
         " SLIM_DIST_TIMEOUT=" + std::to_string(timeout_s) + " SLIM_THREADS=1 ";
}

/// Runs cmds[r] as rank r (environment set by hand, no launcher), in `dirs[r]`, all at once;
/// each rank's exit code and output.
std::vector<test::CmdResult> run_ranks(const std::vector<std::string>& cmds,
                                       const std::vector<std::string>& dirs,
                                       const std::vector<std::string>& envs) {
  std::string script;
  const std::string tmp = test::temp_dir("dist_ranks");
  for (size_t r = 0; r < cmds.size(); ++r) {
    const std::string p = tmp + "/r" + std::to_string(r);
    script += "(cd " + test::quote(dirs[r]) + " && " + envs[r] + cmds[r] + " > " + p + ".out 2> " +
              p + ".err; echo $? > " + p + ".rc) & ";
  }
  script += "wait";
  std::system(("bash -c " + test::quote(script)).c_str());
  std::vector<test::CmdResult> out(cmds.size());
  for (size_t r = 0; r < cmds.size(); ++r) {
    const std::string p = tmp + "/r" + std::to_string(r);
    out[r].code = std::atoi(test::read_file(p + ".rc").c_str());
    out[r].out = test::read_file(p + ".out");
    out[r].err = test::read_file(p + ".err");
  }
  return out;
}

/// Pid of the process whose command line contains `needle` and whose environment has RANK=rank.
pid_t rank_pid(const std::string& needle, int rank) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = test::read_file(e.path().string() + "/cmdline");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    if (cmd.find(needle) == std::string::npos || cmd.find(" launch ") != std::string::npos)
      continue;
    std::string env = test::read_file(e.path().string() + "/environ");
    if (env.find(std::string("RANK=") + std::to_string(rank) + '\0') == 0 ||
        env.find(std::string("\0RANK=", 6) + std::to_string(rank) + '\0') != std::string::npos)
      return static_cast<pid_t>(std::stol(name));
  }
  return -1;
}

/// Starts `cmd` through sh in the background (output to `log`); its pid.
pid_t start(const std::string& cmd, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd + " > '" + log + "' 2>&1").c_str(), nullptr);
    _exit(127);
  }
  return pid;
}

/// Waits for `pid` up to `limit`; its exit code, or -1 (killed then) if it was still running.
int wait_exit(pid_t pid, double limit_s) {
  const auto t0 = Clock::now();
  int status = 0;
  while (seconds_since(t0) < limit_s) {
    if (waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

/// The trained MNIST MobileNetV1 of the accuracy tests, as a file in `dir`.
std::string trained_model(const std::string& dir) {
  const std::string path = dir + "/trained.onnx";
  onnx_save(test::trained_mnist_mobilenet_v1(), path);
  return path;
}

// ---------------------------------------------------------------------------------------------

TEST(DistEnv, ReadsTorchrunsVariablesAndNamesEachBadOne) {
  auto env = [](std::map<std::string, std::string> vars) {
    return dist::env_from([vars](const char* name) -> const char* {
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    });
  };
  EXPECT_FALSE(env({}).active);
  EXPECT_FALSE(env({{"RANK", "0"}, {"WORLD_SIZE", "1"}}).active);
  dist::Env e = env({{"RANK", "3"},
                     {"WORLD_SIZE", "4"},
                     {"LOCAL_RANK", "1"},
                     {"LOCAL_WORLD_SIZE", "2"},
                     {"MASTER_ADDR", "10.0.0.1"},
                     {"MASTER_PORT", "29500"},
                     {"SLIM_DIST_TIMEOUT", "2.5"},
                     {"TORCHELASTIC_USE_AGENT_STORE", "True"}});
  EXPECT_TRUE(e.active);
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 2);
  EXPECT_EQ(e.master_addr, "10.0.0.1");
  EXPECT_EQ(e.master_port, 29500);
  EXPECT_EQ(e.timeout.count(), 2500);
  EXPECT_TRUE(e.agent_store);

  const std::map<std::string, std::string> ok{
      {"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "1234"}};
  auto error = [&](std::map<std::string, std::string> change, std::vector<std::string> drop) {
    auto vars = ok;
    for (const auto& d : drop) vars.erase(d);
    for (const auto& [k, v] : change) vars[k] = v;
    return test::error_of([&] { env(vars); });
  };
  EXPECT_NE(error({}, {"WORLD_SIZE"}).find("RANK='1' is set but WORLD_SIZE is not"),
            std::string::npos);
  EXPECT_NE(error({}, {"RANK"}).find("WORLD_SIZE='2' is set but RANK is not"), std::string::npos);
  EXPECT_NE(error({{"RANK", "2"}}, {}).find("RANK='2' must be below WORLD_SIZE='2'"),
            std::string::npos);
  EXPECT_NE(error({{"RANK", "one"}}, {}).find("RANK='one' is not an integer"), std::string::npos);
  EXPECT_NE(error({}, {"MASTER_ADDR"}).find("MASTER_ADDR is not set"), std::string::npos);
  EXPECT_NE(error({}, {"MASTER_PORT"}).find("MASTER_PORT is not set"), std::string::npos);
  EXPECT_NE(error({{"MASTER_PORT", "70000"}}, {}).find("MASTER_PORT='70000'"), std::string::npos);
  EXPECT_NE(error({{"SLIM_DIST_TIMEOUT", "-1"}}, {}).find("SLIM_DIST_TIMEOUT='-1'"),
            std::string::npos);
  EXPECT_NE(error({{"LOCAL_WORLD_SIZE", "2"}, {"LOCAL_RANK", "2"}}, {}).find("LOCAL_RANK='2'"),
            std::string::npos);

  // Every sample in exactly one part, parts differing by at most one.
  for (int64_t n : {0, 1, 7, 64, 1001})
    for (int world : {1, 2, 3, 8}) {
      int64_t next = 0;
      for (int r = 0; r < world; ++r) {
        auto [b, e2] = dist::split_range(n, r, world);
        EXPECT_EQ(b, next);
        EXPECT_LE(e2 - b, n / world + 1);
        EXPECT_GE(e2 - b, n / world);
        next = e2;
      }
      EXPECT_EQ(next, n);
    }
}

// Acceptance 1. Two ranks, each with half of every global batch of 64, against one process
// with the whole batch (1 thread each; the same seed, so the same sample order).
TEST(DistTrain, TwoRanksTrainTheModelOneProcessTrains) {
  const std::string dir = test::temp_dir("dist_train");
  // LeNet has no BatchNormalization: only the order of the float sums differs (the gradient
  // all-reduce adds two half-batch gradients). Measured worst drift 1.8e-6 to 4.1e-6 over 16
  // steps under the three kernel settings of `make test-isa` and the default (this test: 8).
  const std::string lenet = dir + "/lenet.onnx";
  ZooOptions zo;
  zo.input = {1, 28, 28};
  onnx_save(zoo_build("lenet", zo), lenet);
  const std::string common =
      " --data " + mnist() + " --max-samples 1024 --batch 64 --epochs 1 --lr 0.01 --no-eval -o ";
  auto r = test::run_cmd(slim_cmd() + " train " + lenet + " --threads 1" + common + dir +
                         "/lenet1.onnx");
  ASSERT_EQ(r.code, 0) << r.err;
  r = test::run_cmd(launch2() + "train " + lenet + common + dir + "/lenet2.onnx");
  ASSERT_EQ(r.code, 0) << r.err;
  Drift d = drift(dir + "/lenet1.onnx", dir + "/lenet2.onnx", lenet);
  EXPECT_LT(d.worst, 1e-4) << d.worst_name;

  // MobileNetV1 (27 BatchNormalizations), fine-tuned from the trained model for 8 steps. A
  // freshly initialised one is chaotic at any learning rate we tried: one process with 1 and
  // with 2 threads drifts as far apart as training moves it, so it cannot be compared.
  const std::string model = trained_model(dir);
  const std::string ft =
      " --data " + mnist() + " --max-samples 512 --batch 64 --epochs 1 --lr 0.01 --no-eval -o ";
  r = test::run_cmd(slim_cmd() + " train " + model + " --threads 1" + ft + dir + "/one.onnx");
  ASSERT_EQ(r.code, 0) << r.err;
  r = test::run_cmd(launch2() + "train " + model + " --sync-bn" + ft + dir + "/sync.onnx");
  ASSERT_EQ(r.code, 0) << r.err;
  r = test::run_cmd(launch2() + "train " + model + ft + dir + "/local.onnx");
  ASSERT_EQ(r.code, 0) << r.err;
  // --sync-bn: batch statistics over the global batch, as one process. Measured under the
  // default and `make test-isa` kernels: worst 0.0009 to 0.0037 (BatchNormalization scales and
  // offsets), median 1.4e-5 to 1.9e-5; for scale, one process under ATEN_CPU_CAPABILITY=avx2
  // ONEDNN_MAX_CPU_ISA=AVX2 drifts 0.0008 / 1.3e-5 from itself under the default kernels.
  d = drift(dir + "/one.onnx", dir + "/sync.onnx", model);
  EXPECT_LT(d.worst, 0.02) << d.worst_name;
  EXPECT_LT(d.median, 2e-4);
  // Without it each rank normalises with its own 32 images' statistics: the normalisation, so
  // every gradient, and the running statistics (rank 0's are kept) follow half batches. The
  // model is another one: measured median drift 0.80 to 2.4, worst 2 to 9.5.
  d = drift(dir + "/one.onnx", dir + "/local.onnx", model);
  EXPECT_GT(d.median, 0.1);
}

TEST(DistTrain, EvaluationSplitOverRanksGivesTheWholeSetsNumbers) {
  const std::string dir = test::temp_dir("dist_eval");
  const std::string model = trained_model(dir);
  // 1001 samples: ranks get 501 and 500.
  const std::string args = "eval " + model + " --data " + mnist() + " --max-samples 1001 --json";
  auto one = test::run_cmd(slim_cmd() + " " + args + " --threads 1");
  ASSERT_EQ(one.code, 0) << one.err;
  auto two = test::run_cmd(launch2() + args);
  ASSERT_EQ(two.code, 0) << two.err;
  Json a = Json::parse(one.out), b = Json::parse(two.out);  // one line: rank 0's
  EXPECT_EQ(a["samples"], 1001);
  EXPECT_EQ(a["samples"], b["samples"]);
  EXPECT_EQ(a["top1"], b["top1"]);
  EXPECT_EQ(a["top5"], b["top5"]);
  // The per-sample losses are float32 and the batches are cut elsewhere (measured 4e-8
  // relative).
  EXPECT_NEAR(a["loss"].get<double>(), b["loss"].get<double>(), 1e-6 * a["loss"].get<double>());
}

// Acceptance 2.
TEST(DistSensitivity, TwoRanksWriteTheFileOneRankWrites) {
  const std::string dir = test::temp_dir("dist_sens");
  const std::string model = trained_model(dir);
  const std::string args = "sensitivity " + model + " --data " + mnist() +
                           " --max-samples 500 --ratios 0.2,0.5,0.8 --params ";
  const std::string params = "conv2_1_sep_weights,conv3_1_sep_weights,conv4_1_sep_weights";
  auto r = test::run_cmd(slim_cmd() + " " + args + params + " --threads 1 -o " + dir + "/one.json");
  ASSERT_EQ(r.code, 0) << r.err;
  r = test::run_cmd(launch2() + args + params + " -o " + dir + "/two.json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("(rank 1)"), std::string::npos) << r.err;  // rank 1 did cells
  EXPECT_EQ(test::read_file(dir + "/one.json"), test::read_file(dir + "/two.json"));
  // Resume: a file with one param done; the two ranks share the rest and keep it.
  r = test::run_cmd(slim_cmd() + " " + args + "conv3_1_sep_weights --threads 1 -o " + dir +
                    "/resumed.json");
  ASSERT_EQ(r.code, 0) << r.err;
  r = test::run_cmd(launch2() + args + params + " -o " + dir + "/resumed.json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("3 of this run's entries already in"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_file(dir + "/one.json"), test::read_file(dir + "/resumed.json"));
}

// Acceptance 3.
TEST(DistNas, TwoWorkersSearchWithoutRepeatsAndOneWorkerResumes) {
  const std::string dir = test::temp_dir("dist_nas");
  const std::string out = dir + "/run";
  auto args = [&](int steps) {
    return "nas --space mobilenet_v2 --input 1,28,28 --data fashion:" + test::data_dir("fashion") +
           " --steps " + std::to_string(steps) +
           " --max-samples 256 --val-samples 256 --batch 64 --lr 0.05 --max-flops 6000000 -o " +
           out;
  };
  // Two ranks, killed (the launcher, outright) once four candidates are rewarded.
  auto rewarded = [&] {
    try {
      Json ck = Json::parse(test::read_file(out + "/checkpoint.json"));
      int n = 0;
      for (const auto& c : ck["candidates"]) n += c.value("rejected", false) ? 0 : 1;
      return n;
    } catch (const std::exception&) {
      return 0;
    }
  };
  const bool killed =
      test::run_and_kill(launch2() + args(7), dir + "/two.log", [&] { return rewarded() >= 4; });
  ASSERT_TRUE(killed) << test::read_file(dir + "/two.log");
  const Json before = Json::parse(test::read_file(out + "/checkpoint.json"));
  // The ranks go with their launcher.
  for (int i = 0; i < 100 && (rank_pid(out, 0) > 0 || rank_pid(out, 1) > 0); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(rank_pid(out, 0), -1);
  EXPECT_EQ(rank_pid(out, 1), -1);
  // Both ranks trained: the temperature fell as fast as two workers report (0.85^2 a step).
  const auto& hist = before["controller"]["history"];
  ASSERT_GE(hist.size(), 2u);
  EXPECT_NEAR(hist[1]["temperature"].get<double>(), 0.85 * 0.85, 1e-12);

  auto r = test::run_cmd(slim_cmd() + " " + args(7) + " --threads 1 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const Json after = Json::parse(test::read_file(out + "/checkpoint.json"));
  // What the two ranks logged is kept as it was; the search goes on to seven rewarded
  // candidates and none is evaluated twice.
  const auto& c0 = before["candidates"];
  const auto& c1 = after["candidates"];
  ASSERT_GE(c1.size(), c0.size());
  for (size_t i = 0; i < c0.size(); ++i) EXPECT_EQ(c0[i], c1[i]) << "candidate " << i;
  std::set<std::vector<int64_t>> seen;
  int n = 0;
  for (const auto& c : c1) {
    EXPECT_TRUE(seen.insert(c["tokens"].get<std::vector<int64_t>>()).second)
        << "evaluated twice: " << c["tokens"].dump();
    n += c.value("rejected", false) ? 0 : 1;
  }
  EXPECT_EQ(n, 7);
  EXPECT_TRUE(after["controller"]["pending"].empty());
  const Json best = Json::parse(test::read_file(out + "/best.json"));
  EXPECT_EQ(best["tokens"], after["controller"]["best_tokens"]);
  EXPECT_TRUE(fs::exists(out + "/best.onnx"));
}

// Acceptance 4, through slim launch: a rank killed in the middle of an epoch.
TEST(DistFaults, KilledRankStopsTheOtherNamingItAndTheRunResumes) {
  const std::string dir = test::temp_dir("dist_kill");
  const std::string model = trained_model(dir);
  const std::string out = dir + "/out.onnx";
  const std::string cmd = slim_cmd() + " launch --nproc 2 --threads 1 --timeout 20 -- slim train " +
                          model + " --data " + mnist() +
                          " --max-samples 512 --batch 64 --epochs 3 --lr 0.01 --no-eval -o " + out;
  const pid_t launcher = start(cmd, dir + "/killed.log");
  const auto t0 = Clock::now();
  while (!fs::exists(out + ".ckpt") && seconds_since(t0) < 120)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(fs::exists(out + ".ckpt")) << test::read_file(dir + "/killed.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // into epoch 2
  const pid_t victim = rank_pid(out, 1);
  ASSERT_GT(victim, 0);
  kill(victim, SIGKILL);
  const auto killed_at = Clock::now();
  const int code = wait_exit(launcher, 60);
  const double took = seconds_since(killed_at);
  const std::string log = test::read_file(dir + "/killed.log");
  EXPECT_NE(code, 0) << log;
  EXPECT_NE(code, -1) << "still running 60 s after the kill: " << log;
  EXPECT_LT(took, 20) << "more than --timeout: " << log;
  EXPECT_NE(log.find("slim launch: rank 1 (pid " + std::to_string(victim) +
                     ") was killed by signal 9 (SIGKILL)"),
            std::string::npos)
      << log;
  // Rank 0's own error names the lost rank too.
  EXPECT_NE(log.find("slim: error: rank 0: "), std::string::npos) << log;
  EXPECT_NE(log.find("rank 1 (pid " + std::to_string(victim) + ")"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(out)) << "no output from a failed run";
  ASSERT_TRUE(fs::exists(out + ".ckpt"));

  // Rerun: resumes after the last finished epoch and ends where an uninterrupted run ends.
  auto r = test::run_cmd(cmd);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming from '" + out + ".ckpt' after epoch"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out + ".ckpt"));
  const std::string whole = dir + "/whole.onnx";
  std::string again = cmd;
  again.replace(again.find("-o " + out), 3 + out.size(), "-o " + whole);
  r = test::run_cmd(again);
  ASSERT_EQ(r.code, 0) << r.err;
  Drift d = drift(whole, out, model);
  EXPECT_LT(d.worst, 1e-5) << d.worst_name;
}

// Acceptance 4 without a launcher (ranks started by hand or by another launcher): the lost
// rank is found by its heartbeat; a hung one by the collective's timeout.
TEST(DistFaults, WithoutLauncherALostOrHungRankIsNamed) {
  const std::string dir = test::temp_dir("dist_lost");
  const std::string model = trained_model(dir);
  for (const char* how : {"killed", "stopped"}) {
    SCOPED_TRACE(how);
    const bool hang = std::string(how) == "stopped";
    const double timeout = hang ? 3 : 30;
    const int port = free_port();
    const std::string out = dir + "/" + how + ".onnx";
    const std::string args = slim_cmd() + " train " + model + " --data " + mnist() +
                             " --max-samples 512 --batch 64 --epochs 3 --lr 0.01 --no-eval -o " +
                             out;
    pid_t r0 = start("env " + rank_env(0, 2, port, timeout) + args, dir + "/" + how + "0.log");
    pid_t r1 = start("env " + rank_env(1, 2, port, timeout) + args, dir + "/" + how + "1.log");
    const auto t0 = Clock::now();
    while (!fs::exists(out + ".ckpt") && seconds_since(t0) < 120)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_TRUE(fs::exists(out + ".ckpt")) << test::read_file(dir + "/" + how + "0.log");
    kill(r1, hang ? SIGSTOP : SIGKILL);
    const auto at = Clock::now();
    const int code = wait_exit(r0, 60);
    const double took = seconds_since(at);
    kill(r1, SIGKILL);
    waitpid(r1, nullptr, 0);
    const std::string log = test::read_file(dir + "/" + how + "0.log");
    EXPECT_EQ(code, 1) << log;
    // Killed: Gloo sees the closed connection at once, the heartbeat check takes 3.5 s.
    // Stopped: the all-reduce waits out the timeout first.
    EXPECT_LT(took, timeout + 10) << log;
    EXPECT_NE(log.find("slim: error: rank 0: "), std::string::npos) << log;
    EXPECT_NE(log.find("lost rank 1 (pid "), std::string::npos) << log;
    EXPECT_NE(log.find("no heartbeat"), std::string::npos) << log;
    EXPECT_FALSE(fs::exists(out));
  }
}

// Acceptance 6.
TEST(DistBadInput, EachBadLaunchIsOneClearErrorWithinTheTimeout) {
  const std::string dir = test::temp_dir("dist_bad");
  const std::string model = dir + "/m.onnx";
  ZooOptions zo;
  zo.input = {1, 28, 28};
  onnx_save(zoo_build("lenet", zo), model);
  const std::string out = dir + "/out.onnx";
  const std::string train = slim_cmd() + " train " + model + " --data " + mnist() +
                            " --max-samples 256 --batch 64 --no-eval -o " + out;
  auto expect_error = [&](const std::string& env, const std::string& cmd,
                          const std::string& message, double within_s = 30) {
    SCOPED_TRACE(env + cmd);
    const auto t0 = Clock::now();
    auto r = test::run_cmd(env + cmd);
    EXPECT_LT(seconds_since(t0), within_s);
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(out));
  };
  expect_error("RANK=0 ", train,
               "slim: error: environment variable RANK='0' is set but "
               "WORLD_SIZE is not");
  expect_error("RANK=2 WORLD_SIZE=2 ", train, "RANK='2' must be below WORLD_SIZE='2'");
  expect_error("RANK=0 WORLD_SIZE=2 ", train, "MASTER_ADDR is not set");
  // Nobody at the master's port: rank 1 gives up after the timeout (2 s).
  const int port = free_port();
  expect_error(rank_env(1, 2, port, 2), train,
               "rank 1 cannot reach the master at MASTER_ADDR:MASTER_PORT=127.0.0.1:" +
                   std::to_string(port) + " within 2 s",
               15);
  // Rank 0 alone: rank 1 never starts.
  expect_error(rank_env(0, 2, free_port(), 2), train,
               "rank 0 waited 2 s for rank(s) 1 to start (WORLD_SIZE=2; started: 0)", 15);
  expect_error(rank_env(0, 2, free_port(), 2),
               slim_cmd() + " prune " + model + " --ratios 0.5 -o " + out,
               "'slim prune' does not run distributed, but RANK=0 and WORLD_SIZE=2 are set");
  expect_error("", train + " --sync-bn", "--sync-bn needs a distributed run");

  // Ranks that disagree: every rank stops, naming the odd one.
  auto both_fail = [&](const std::vector<std::string>& cmds, const std::vector<std::string>& dirs,
                       const std::vector<std::string>& envs, const std::string& message) {
    const auto t0 = Clock::now();
    auto rs = run_ranks(cmds, dirs, envs);
    EXPECT_LT(seconds_since(t0), 30);
    for (size_t r = 0; r < rs.size(); ++r) {
      SCOPED_TRACE("rank " + std::to_string(r));
      EXPECT_EQ(rs[r].code, 1) << rs[r].err;
      EXPECT_NE(rs[r].err.find(message), std::string::npos) << rs[r].err;
    }
    EXPECT_FALSE(fs::exists(out));
  };
  int p = free_port();
  both_fail({train + " --lr 0.1", train + " --lr 0.2"}, {dir, dir},
            {rank_env(0, 2, p, 20), rank_env(1, 2, p, 20)},
            "rank 1 runs a different command from rank 0: argument 13 is '0.2' there and '0.1' "
            "here");
  // The same path, another file: each rank runs in its own directory.
  fs::create_directories(dir + "/a");
  fs::create_directories(dir + "/b");
  onnx_save(zoo_build("lenet", zo), dir + "/a/m.onnx");
  zo.seed = 1;
  onnx_save(zoo_build("lenet", zo), dir + "/b/m.onnx");
  const std::string rel = slim_cmd() + " train m.onnx --data " + mnist() +
                          " --max-samples 256 --batch 64 --no-eval -o " + out;
  p = free_port();
  both_fail({rel, rel}, {dir + "/a", dir + "/b"}, {rank_env(0, 2, p, 20), rank_env(1, 2, p, 20)},
            "rank 1's 'm.onnx' is not the same file as rank 0's");
  p = free_port();
  both_fail({train, train}, {dir, dir}, {rank_env(0, 2, p, 20), rank_env(1, 3, p, 20)},
            "; start every rank with the same WORLD_SIZE");
}

}  // namespace
}  // namespace slim
