// PaddleSlim's pruning tutorial on a subset of real MNIST: train, sensitivity of two separable
// convs, ratios for an accepted loss, prune, fine-tune. The full run is `make demo`.
#include <gtest/gtest.h>

#include "slim/analysis/flops.h"
#include "slim/prune/prune_channels.h"
#include "slim/prune/sensitivity.h"
#include "slim/train/trainer.h"
#include "slim/zoo/zoo.h"
#include "test_util.h"

namespace slim {
namespace {

TEST(PruneMnist, TutorialOnASubsetKeepsAccuracy) {
  const std::string spec = "mnist:" + test::data_dir("mnist");
  auto train_set = open_dataset(spec, Split::kTrain);
  auto test_set = open_dataset(spec, Split::kTest);
  ZooOptions zo;
  zo.input = {1, 28, 28};
  zo.classes = 10;
  Graph g = zoo_build("mobilenet_v1", zo);
  TrainOptions to;
  to.batch_size = 64;
  to.lr = 0.05;
  to.max_samples = 4096;
  to.threads = 1;  // ctest runs tests in parallel
  to.progress = false;
  train(g, train_set, to);
  EvalOptions eo;
  eo.max_samples = 1000;
  eo.threads = 1;
  eo.progress = false;
  const double trained = evaluate(g, test_set, eo).top1;
  ASSERT_GT(trained, 0.6);

  SensitivityOptions so;
  so.params = {"conv3_1_sep_weights", "conv4_1_sep_weights"};
  so.ratios = {0.3, 0.6};
  so.eval = eo;
  so.progress = false;
  Sensitivities s = sensitivity(g, test_set, so);
  ASSERT_EQ(s.size(), 2u);
  for (const auto& [p, pts] : s) EXPECT_EQ(pts.size(), 2u) << p;
  // A generous accepted loss keeps both layers in the result.
  auto ratios = ratios_by_loss(s, 0.5);
  ASSERT_EQ(ratios.size(), 2u);
  PruneOptions po;
  po.ratios = ratios;
  Graph p = g.clone();
  prune_channels(p, po);
  EXPECT_LT(count_flops(p).total, count_flops(g).total);
  train(p, train_set, to);
  const double tuned = evaluate(p, test_set, eo).top1;
  EXPECT_GT(tuned, 0.8) << "trained " << trained;
}

}  // namespace
}  // namespace slim
