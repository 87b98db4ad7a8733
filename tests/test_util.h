#pragma once
// Helpers shared by tests: a small graph builder and paths to fixtures.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>

#include "slim/data/npy.h"
#include "slim/ir/graph.h"
#include "slim/zoo/zoo.h"

namespace slim::test {

/// Builds small graphs in code (after ONNX Runtime's ModelTestBuilder).
class GraphBuilder {
 public:
  explicit GraphBuilder(int64_t opset = 13) { g_.opset = opset; }

  std::string input(const std::string& name, std::vector<int64_t> shape,
                    at::ScalarType dt = at::kFloat) {
    ValueInfo v;
    v.name = name;
    v.dtype = dt;
    v.has_shape = true;
    v.shape = shape;
    for (auto d : shape) v.dim_names.push_back(d == kDynamicDim ? "N" : "");
    g_.inputs.push_back(v);
    return name;
  }
  std::string init(const std::string& name, const at::Tensor& t) {
    g_.initializers[name] = t;
    return name;
  }
  /// Adds a node with one output named after the node; returns the output name.
  std::string node(const std::string& op, const std::vector<std::string>& inputs,
                   std::map<std::string, AttrValue> attrs = {}, const std::string& name = "") {
    Node n;
    n.op_type = op;
    n.name = name.empty() ? op + "_" + std::to_string(g_.nodes.size()) : name;
    n.inputs = inputs;
    n.outputs = {n.name + "_out"};
    n.attrs = std::move(attrs);
    g_.nodes.push_back(n);
    return n.outputs[0];
  }
  void output(const std::string& name, at::ScalarType dt = at::kFloat) {
    ValueInfo v;
    v.name = name;
    v.dtype = dt;
    g_.outputs.push_back(v);
  }
  Graph build() {
    g_.mark_default_trainable();
    g_.verify();
    return g_;
  }

 private:
  Graph g_;
};

inline std::string source_dir() { return SLIM_SOURCE_DIR; }
inline std::string binary_dir() { return SLIM_BINARY_DIR; }
/// Path of the `slim` CLI binary under test.
inline std::string slim_bin() {
  const char* b = std::getenv("SLIM_BIN");
  return b ? b : std::string(SLIM_BINARY_DIR) + "/slim";
}

struct CmdResult {
  int code = -1;
  std::string out;  ///< stdout
  std::string err;  ///< stderr
};

/// Runs a shell command; captures stdout, stderr and the exit code.
inline CmdResult run_cmd(const std::string& cmd) {
  static int counter = 0;
  std::string err_path = std::string(SLIM_BINARY_DIR) + "/test_stderr_" +
                         std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".txt";
  CmdResult r;
  FILE* p = ::popen((cmd + " 2>" + err_path).c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream f(err_path);
  std::stringstream ss;
  ss << f.rdbuf();
  r.err = ss.str();
  std::remove(err_path.c_str());
  return r;
}

/// Starts `cmd` (stdout and stderr to `log`), polls `ready()` every 20 ms and kills the process
/// with SIGKILL once it returns true (or after `timeout`). Returns true if the process was
/// killed, false if it ended by itself first. For tests of resuming after kill -9.
template <typename Ready>
bool run_and_kill(const std::string& cmd, const std::string& log, Ready ready,
                  std::chrono::seconds timeout = std::chrono::seconds(180)) {
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd + " > '" + log + "' 2>&1").c_str(), nullptr);
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (waitpid(pid, &status, WNOHANG) == pid) return false;  // ended by itself
    if (ready()) break;
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status);
}

/// A file's bytes ("" if it cannot be read).
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// `s` in single quotes for a shell command line.
inline std::string quote(const std::string& s) { return "'" + s + "'"; }

/// Runs ONNX Runtime (tests/fixtures/ort_run.js) on `model`: feeds `in_npy` to its first input
/// and writes its first output to `out_npy`; `extra` is appended (e.g. "--optimized F.onnx").
/// Runs from the source dir with NODE_PATH so require('onnxruntime-node') resolves from the
/// repository's node_modules.
inline CmdResult ort_run_files(const std::string& model, const std::string& in_npy,
                               const std::string& out_npy, const std::string& extra = "") {
  const std::string src = source_dir();
  return run_cmd("cd " + quote(src) + " && NODE_PATH=" + quote(src + "/node_modules") +
                 " node tests/fixtures/ort_run.js " + quote(model) + " " + quote(in_npy) + " " +
                 quote(out_npy) + (extra.empty() ? "" : " " + extra));
}

/// ONNX Runtime's output for `x` on the model file `model`, through .npy files in `dir`; a test
/// failure (and an undefined tensor) if it does not run.
inline at::Tensor ort_run(const std::string& model, const at::Tensor& x, const std::string& dir) {
  npy_save(x, dir + "/ort_x.npy");
  CmdResult r = ort_run_files(model, dir + "/ort_x.npy", dir + "/ort_y.npy");
  EXPECT_EQ(r.code, 0) << "ONNX Runtime on " << model << ": " << r.out << r.err;
  return r.code == 0 ? npy_load(dir + "/ort_y.npy") : at::Tensor();
}

/// Writes `text` to `path` (replacing it).
inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

/// A fresh empty directory under the build tree for one test's files.
inline std::string temp_dir(const std::string& name) {
  std::string d =
      std::string(SLIM_BINARY_DIR) + "/test_tmp/" + name + "_" + std::to_string(::getpid());
  std::system(("rm -rf '" + d + "' && mkdir -p '" + d + "'").c_str());
  return d;
}

/// Runs `fn`, which must throw slim::Error; returns the message (a test failure if it did not).
template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected slim::Error";
  return "";
}

/// data/NAME under the source tree (MNIST, Fashion-MNIST), fetched by scripts/setup.sh; a
/// missing directory fails the calling test with the fix.
inline std::string data_dir(const std::string& name) {
  std::string d = source_dir() + "/data/" + name;
  if (!std::filesystem::is_regular_file(d + "/train-images-idx3-ubyte"))
    throw std::runtime_error(d + " is missing: run scripts/setup.sh (or scripts/fetch_data.sh) " +
                             "to fetch MNIST and Fashion-MNIST");
  return d;
}

/// PaddleSlim's tutorial model: zoo MobileNetV1 for MNIST (1x28x28, 10 classes).
inline Graph mnist_mobilenet_v1() {
  ZooOptions o;
  o.input = {1, 28, 28};
  o.classes = 10;
  return zoo_build("mobilenet_v1", o);
}

/// Moves every BatchNormalization away from its 1/0 defaults (scale and variance in [0.5, 1.5),
/// offset and mean N(0, 0.1)), drawn after at::manual_seed(seed), so that a wrong cut or fold
/// shows in the output.
inline void randomize_batch_norm(Graph& g, uint64_t seed) {
  at::manual_seed(seed);
  for (const auto& n : g.nodes) {
    if (n.op_type != "BatchNormalization") continue;
    auto& scale = g.initializers.at(n.inputs[1]);
    scale = at::rand_like(scale) + 0.5;
    g.initializers.at(n.inputs[2]) = at::randn_like(scale) * 0.1;
    g.initializers.at(n.inputs[3]) = at::randn_like(scale) * 0.1;
    g.initializers.at(n.inputs[4]) = at::rand_like(scale) + 0.5;
  }
}

/// max|a-b| / max|b|, after checking that shapes agree.
inline double rel_error(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return 1e30;
  double diff = (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
  double scale = b.to(at::kDouble).abs().max().item<double>();
  return diff / std::max(scale, 1e-30);
}

}  // namespace slim::test
