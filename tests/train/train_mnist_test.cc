// Training on real MNIST (data/mnist, fetched by scripts/setup.sh): a zoo MobileNetV1 and a CNN
// exported by PyTorch with BatchNormalization kept. Subsets keep the suite fast; the full epoch
// runs in `make demo`.
#include <gtest/gtest.h>

#include "test_util.h"
#include "trained_models.h"
#include "slim/onnx/onnx_io.h"
#include "slim/train/trainer.h"
#include "slim/zoo/zoo.h"

namespace slim {
namespace {

std::string mnist_dir() { return test::data_dir("mnist"); }

EvalResult eval_subset(Graph& g, int64_t n) {
  EvalOptions eo;
  eo.max_samples = n;
  eo.progress = false;
  eo.threads = 1;
  return evaluate(g, open_dataset("mnist:" + mnist_dir(), Split::kTest), eo);
}

TEST(TrainMnist, MobileNetV1AccuracyRisesWellAboveChance) {
  ZooOptions zo;
  zo.input = {1, 28, 28};
  zo.classes = 10;
  zo.seed = test::test_seed();
  Graph g = zoo_build("mobilenet_v1", zo);
  double before = eval_subset(g, 1000).top1;
  TrainOptions o;
  o.epochs = 1;
  o.batch_size = 64;
  o.lr = 0.05;
  o.schedule = LrSchedule::kCosine;  // a stable end point (see trained_models.h)
  o.seed = test::test_seed();
  o.max_samples = 4096;
  o.threads = 1;
  o.progress = false;
  auto stats = train(g, open_dataset("mnist:" + mnist_dir(), Split::kTrain), o);
  EvalResult after = eval_subset(g, 1000);
  // Over seeds 0-4, each under three kernel settings (trained_models.h): 0.714 to 0.803.
  EXPECT_GT(after.top1, 0.6) << "before training: " << before << ", train loss "
                             << stats[0].train_loss;
  EXPECT_LT(before, 0.3);
  std::printf("[   info   ] MobileNetV1: top-1 before %.3f, after %.3f\n", before, after.top1);
}

TEST(TrainMnist, PyTorchExportedCnnLearns) {
  std::string dir = test::temp_dir("mnist_cnn");
  std::string model = dir + "/mnist_cnn.onnx";
  auto r = test::run_cmd("/usr/bin/python3 " + test::source_dir() +
                         "/tests/fixtures/export_mnist_cnn.py " + model);
  ASSERT_EQ(r.code, 0) << r.err;
  Graph g = onnx_load(model);
  auto ops = g.op_histogram();
  ASSERT_EQ(ops["BatchNormalization"], 2) << g.dump();
  double before = eval_subset(g, 1000).top1;
  TrainOptions o;
  o.epochs = 2;
  o.batch_size = 64;
  // At lr 0.05 this net's 64 steps were unstable: 0.42-0.87 over shuffling seeds 0-4.
  o.lr = 0.01;
  o.schedule = LrSchedule::kCosine;
  o.max_samples = 2048;
  o.seed = test::test_seed();
  o.threads = 1;
  o.progress = false;
  auto stats = train(g, open_dataset("mnist:" + mnist_dir(), Split::kTrain), o);
  EXPECT_LT(stats[1].train_loss, stats[0].train_loss);
  const double after = eval_subset(g, 1000).top1;
  // Over seeds 0-4, each under three kernel settings: 0.900 to 0.911.
  EXPECT_GT(after, 0.85) << "before: " << before;
  std::printf("[   info   ] PyTorch CNN: top-1 before %.3f, after %.3f\n", before, after);
  // The trained model is still a valid ONNX file that Slim reloads with the same weights.
  onnx_save(g, dir + "/trained.onnx");
  Graph back = onnx_load(dir + "/trained.onnx");
  for (const auto& [name, t] : g.initializers)
    EXPECT_TRUE(at::equal(t, back.initializers.at(name))) << name;
}

}  // namespace
}  // namespace slim
