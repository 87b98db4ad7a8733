// Gradient all-reduce cost per training step, and compute time per step, for a model.
//
//   slim launch --nproc 2 --threads 1 -- build/bench_allreduce MODEL.onnx [--steps N]
//       all-reduce of the model's gradients in the buckets data-parallel training uses
//       (dist::GradientAverager's rule: last parameters first, ~1 MB then ~25 MB), every bucket
//       launched at once and waited for, median over N steps; rank 0 prints one JSON line.
//   build/bench_allreduce MODEL.onnx --compute --batch B [--steps N] [--threads T]
//       one process: forward + backward (cross-entropy) of the model on random images of its
//       input shape at batch B, median over N steps; one JSON line.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <vector>

#include "slim/dist/dist.h"
#include "slim/exec/executor.h"
#include "slim/ir/error.h"
#include "slim/onnx/onnx_io.h"
#include "slim/train/trainer.h"

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

int run(int argc, char** argv) {
  SLIM_CHECK(argc >= 2,
             "usage: bench_allreduce MODEL.onnx [--steps N] [--compute --batch B "
             "--threads T]");
  std::string model = argv[1];
  int steps = 20, batch = 32, threads = 0;
  bool compute = false;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&] {
      SLIM_CHECK(i + 1 < argc, a, " needs a value");
      return std::atoi(argv[++i]);
    };
    if (a == "--steps")
      steps = value();
    else if (a == "--batch")
      batch = value();
    else if (a == "--threads")
      threads = value();
    else if (a == "--compute")
      compute = true;
    else
      SLIM_FAIL("unknown argument '", a, "'");
  }
  slim::Graph g = slim::onnx_load(model);
  std::vector<at::Tensor> params;
  int64_t count = 0;
  for (const auto& name : g.trainable) {
    params.push_back(g.initializers.at(name));
    count += g.initializers.at(name).numel();
  }

  if (compute) {
    slim::set_num_threads(threads);
    SLIM_CHECK(g.inputs.size() == 1 && g.inputs[0].has_shape, model, ": one input with a shape");
    std::vector<int64_t> shape = g.inputs[0].shape;
    shape[0] = batch;
    at::manual_seed(0);
    at::Tensor x = at::randn(shape);
    slim::Executor ex(g);
    ex.set_training(true);
    const std::string logits = slim::logits_value(g);
    std::vector<double> times;
    for (int s = 0; s < steps + 1; ++s) {
      for (auto& p : params) p.mutable_grad() = at::Tensor();
      const auto t0 = Clock::now();
      at::Tensor y = ex.run_named({{g.inputs[0].name, x}}, {logits}).at(logits);
      at::Tensor loss = at::nll_loss(at::log_softmax(y, 1), at::zeros({batch}, at::kLong));
      loss.backward();
      if (s > 0) times.push_back(ms_since(t0));  // the first step warms up
    }
    std::printf(
        "{\"model\":\"%s\",\"params\":%lld,\"batch\":%d,\"threads\":%d,"
        "\"step_ms\":%.3f}\n",
        model.c_str(), static_cast<long long>(count), batch, slim::num_threads(), median(times));
    return 0;
  }

  slim::dist::Env env = slim::dist::env_from();
  SLIM_CHECK(env.active, "run under slim launch --nproc N (N >= 2)");
  std::vector<std::string> args(argv, argv + argc);
  auto group = slim::dist::Group::join(env, slim::dist::identity_of(args));
  // The buckets data-parallel training reduces (dist::GradientAverager's).
  std::vector<int64_t> numels;
  for (const auto& p : params) numels.push_back(p.numel());
  std::vector<at::Tensor> buckets;
  for (const auto& members : slim::dist::gradient_buckets(numels)) {
    int64_t elems = 0;
    for (size_t k : members) elems += numels[k];
    buckets.push_back(at::ones({elems}));
  }
  auto pg = group->process_group();
  std::vector<double> times;
  group->barrier("start");
  for (int s = 0; s < steps + 2; ++s) {
    const auto t0 = Clock::now();
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto& b : buckets) {
      std::vector<at::Tensor> one{b};
      works.push_back(pg->allreduce(one));
    }
    for (auto& w : works) w->wait();
    if (s >= 2) times.push_back(ms_since(t0));  // two warm-up steps
  }
  group->barrier("end");
  if (group->rank() == 0) {
    const double ms = median(times);
    const double mb = static_cast<double>(count) * 4 / 1e6;
    const int n = group->size();
    // Bus bandwidth as NCCL's tests report it: a ring all-reduce moves 2(n-1)/n of the data
    // through each link.
    std::printf(
        "{\"model\":\"%s\",\"params\":%lld,\"megabytes\":%.3f,\"buckets\":%zu,"
        "\"ranks\":%d,\"allreduce_ms\":%.3f,\"min_ms\":%.3f,\"algbw_GBps\":%.3f,"
        "\"busbw_GBps\":%.3f}\n",
        model.c_str(), static_cast<long long>(count), mb, buckets.size(), n, ms,
        *std::min_element(times.begin(), times.end()), mb / ms, mb / ms * 2.0 * (n - 1) / n);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_allreduce: error: %s\n", e.what());
    return 1;
  }
}
