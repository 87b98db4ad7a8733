// Slim's trainer computes what PyTorch computes: a MobileNetV1 (PaddleSlim's MNIST tutorial model)
// trained for a few steps by train() and by an independent PyTorch eager reference
// (tests/fixtures/torch_train_reference.py, SGD with momentum and weight decay written out by
// hand) from the same ONNX file, on the same MNIST images in file order, ends with the same
// tensors: every conv weight, BN scale and offset, BN running mean and variance, fc weight and
// bias.
//
// What is compared. The error of a tensor is ||slim - torch|| / (||torch - init|| + 1e-6
// ||torch||) (L2 norms): the difference measured against what training changed, so that a wrong
// update shows however small the update is next to the weight; the 1e-6 term (about 8 float32
// ulps of the tensor) keeps a last-bit difference on a tensor that barely moved (a BN scale of 1
// updated by 1e-7) from counting as a wrong update. After one step from zero velocity the
// change is -lr * (gradient + weight_decay * w), so the first test checks the gradients.
//
// Why from a trained model and only a few steps. From a fresh initialisation this network is
// chaotic at lr 0.1 (conv6_dw sees a 1x1 map; some of its BN channels have a batch variance below
// epsilon): a rounding difference in one kernel grows to O(1) within three steps, and an AVX-512
// GEMM that rounds differently from the one PyTorch reaches failed a bit-exact comparison on an
// Intel Xeon. From the trained model of trained_models.h the updates are well conditioned.
//
// Tolerances, measured. The same tensors with the kernels varied on one side only (PyTorch on
// 1 thread instead of 2; Slim under ONEDNN_MAX_CPU_ISA=AVX2 or AVX512_CORE, OPENBLAS_CORETYPE
// unset, Haswell, Sandybridge or SkylakeX, ATEN_CPU_CAPABILITY=avx2) from the models of seeds 0-4.
// Most tensors agree to 1e-5; a few are ill-conditioned (BN offsets of the last blocks, whose maps
// are 2x2 and 1x1: a ReLU that flips in the batch moves their gradient), so each test bounds the
// median tensor tightly and the worst tensor loosely:
//                      worst median seen   bound   worst tensor seen   bound
//   1 step, lr 0.1          1.1e-5         1e-3         1.7e-3         1e-2
//   5 steps, lr 0.01        3.9e-5         5e-3         2.7e-3         5e-2
// (Models trained on half the images were less well conditioned: worst tensor 1.35e-2 after five
// steps.) Mutations of the trainer, each failing the test that covers it, are listed in the
// closing note of issue 15: BN running statistics with momentum 0.8 instead of 0.9, weight decay
// dropped, momentum 0.8 instead of 0.9, one optimizer step skipped, the learning rate 2% low.
// ATen's scalar kernels (ATEN_CPU_CAPABILITY=default, below the AVX2 machines the suite supports)
// stay within the bounds too: worst median 2.8e-5, worst tensor 1.7e-3.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "slim/data/dataset.h"
#include "slim/onnx/onnx_io.h"
#include "slim/train/trainer.h"
#include "test_util.h"
#include "trained_models.h"

namespace slim {
namespace {

constexpr int64_t kBatch = 128;
constexpr int kThreads = 2;  // the same on both sides

struct Recipe {
  double lr = 0.1;
  int64_t steps = 1;
  double weight_decay = 0;
};

/// ||a - b|| / (||b - init|| + 1e-6 ||b||), after checking that shapes agree.
double update_error(const at::Tensor& a, const at::Tensor& b, const at::Tensor& init) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return 1e30;
  const at::Tensor ad = a.to(at::kDouble), bd = b.to(at::kDouble), id = init.to(at::kDouble);
  const double diff = (ad - bd).norm().item<double>();
  const double scale = (bd - id).norm().item<double>() + 1e-6 * bd.norm().item<double>();
  return diff / std::max(scale, 1e-30);
}

/// Trains the shared trained MobileNetV1 by `r` with Slim and with the PyTorch reference; checks
/// the median tensor's error against `median_tol` and every tensor's against `max_tol`.
void expect_agreement(const Recipe& r, double median_tol, double max_tol, const std::string& tag) {
  if (test::run_cmd("/usr/bin/python3 -c 'import torch, onnx' >/dev/null").code != 0)
    GTEST_SKIP() << "/usr/bin/python3 cannot import torch and onnx (python3-torch, python3-onnx)";
  const std::string mnist = test::data_dir("mnist");
  const std::string dir = test::temp_dir("pytorch_train_agreement_" + tag);
  const std::string init_path = dir + "/start.onnx";
  const std::string ref_path = dir + "/torch_trained.onnx";
  Graph g = test::trained_mnist_mobilenet_v1();
  onnx_save(g, init_path);
  const Graph init = g.clone();

  // The reference first, so that the two never compete for the cores.
  auto cmd = test::run_cmd(
      "/usr/bin/python3 " +
      test::quote(test::source_dir() + "/tests/fixtures/torch_train_reference.py") + " " +
      test::quote(init_path) + " --data " + test::quote(mnist) + " --epochs 1 --batch " +
      std::to_string(kBatch) + " --lr " + std::to_string(r.lr) + " --momentum 0.9" +
      " --weight-decay " + std::to_string(r.weight_decay) + " --max-samples " +
      std::to_string(kBatch * r.steps) + " --threads " + std::to_string(kThreads) + " --out " +
      test::quote(ref_path));
  ASSERT_EQ(cmd.code, 0) << "torch_train_reference.py failed:\n" << cmd.out << cmd.err;
  const Graph ref = onnx_load(ref_path);

  // `slim train --no-shuffle --drop-last --no-eval`, PaddleSlim's tutorial settings.
  TrainOptions o;
  o.epochs = 1;
  o.batch_size = kBatch;
  o.lr = r.lr;
  o.optimizer = OptimizerKind::kMomentum;
  o.momentum = 0.9;
  o.weight_decay = r.weight_decay;
  o.max_samples = kBatch * r.steps;
  o.shuffle = false;
  o.drop_last = true;
  o.threads = kThreads;
  o.progress = false;
  auto stats = train(g, open_dataset("mnist:" + mnist, Split::kTrain), o);
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].samples, kBatch * r.steps);

  ASSERT_EQ(g.initializers.size(), ref.initializers.size());
  EXPECT_EQ(g.initializers.size(), 137u);  // 27 convs x (weight + 4 BN tensors) + fc weight, bias
  std::vector<std::pair<double, std::string>> errors;
  for (const auto& [name, want] : ref.initializers) {
    auto it = g.initializers.find(name);
    ASSERT_NE(it, g.initializers.end()) << name << " is in the reference but not in Slim's model";
    const at::Tensor& start = init.initializers.at(name);
    // Both sides must have trained the tensor, or agreeing proves nothing.
    EXPECT_FALSE(at::equal(want, start)) << name << " did not change in PyTorch";
    const double err = update_error(it->second, want, start);
    errors.emplace_back(err, name);
    EXPECT_LE(err, max_tol) << name << ": ||slim - torch|| / ||torch - start|| after " << r.steps
                            << " steps at lr " << r.lr;
  }
  std::sort(errors.begin(), errors.end());
  const double median = errors[errors.size() / 2].first;
  EXPECT_LE(median, median_tol) << "the median tensor's error after " << r.steps << " steps";
  std::printf("[   info   ] %lld steps at lr %g: median tensor error %.3g (bound %g), worst %.3g "
              "(%s, bound %g)\n",
              static_cast<long long>(r.steps), r.lr, median, median_tol, errors.back().first,
              errors.back().second.c_str(), max_tol);
  std::filesystem::remove_all(dir);
}

TEST(PyTorchTrainAgreement, OneStepGivesPyTorchsGradientsAndBatchNormStatistics) {
  // The tutorial's lr; weight decay large enough that dropping it moves every weight's update.
  expect_agreement(Recipe{/*lr=*/0.1, /*steps=*/1, /*weight_decay=*/0.01}, 1e-3, 1e-2, "one_step");
}

TEST(PyTorchTrainAgreement, FiveMomentumStepsWithWeightDecayMatchPyTorch) {
  // Momentum accumulates over the steps; the running statistics are updated five times.
  expect_agreement(Recipe{/*lr=*/0.01, /*steps=*/5, /*weight_decay=*/0.01}, 5e-3, 5e-2, "five_steps");
}

}  // namespace
}  // namespace slim
