// PaddleSlim's pruning tutorial on a subset of real MNIST, from the shared trained MobileNetV1
// (trained_models.h): sensitivity of two separable convs, ratios for an accepted loss, prune,
// fine-tune. The full run is `make demo`.
#include <gtest/gtest.h>

#include <cstdio>

#include "slim/analysis/flops.h"
#include "slim/prune/prune_channels.h"
#include "slim/prune/sensitivity.h"
#include "slim/train/trainer.h"
#include "test_util.h"
#include "trained_models.h"

namespace slim {
namespace {

TEST(PruneMnist, TutorialOnASubsetKeepsAccuracy) {
  const std::string spec = "mnist:" + test::data_dir("mnist");
  auto train_set = open_dataset(spec, Split::kTrain);
  auto test_set = open_dataset(spec, Split::kTest);
  Graph g = test::trained_mnist_mobilenet_v1();
  EvalOptions eo;
  eo.max_samples = 1000;
  eo.threads = 2;
  eo.progress = false;
  const double trained = evaluate(g, test_set, eo).top1;
  ASSERT_GT(trained, 0.8) << "the shared model did not learn MNIST";

  SensitivityOptions so;
  so.params = {"conv3_1_sep_weights", "conv4_1_sep_weights"};
  so.ratios = {0.1, 0.2, 0.3};
  so.eval = eo;
  so.progress = false;
  Sensitivities s = sensitivity(g, test_set, so);
  ASSERT_EQ(s.size(), 2u);
  for (const auto& [p, pts] : s) {
    EXPECT_EQ(pts.size(), 3u) << p;
    for (const auto& [r, l] : pts) std::printf("[   info   ] %s at %.1f: loss %.4f\n", p.c_str(), r, l);
  }
  // 5% accepted loss, so that the fine-tune has something to recover; a conv whose smallest ratio
  // already loses more is left out (seen on one kernel setting's model).
  auto ratios = ratios_by_loss(s, 0.05);
  ASSERT_FALSE(ratios.empty());
  PruneOptions po;
  po.ratios = ratios;
  Graph p = g.clone();
  prune_channels(p, po);
  EXPECT_LT(count_flops(p).total, count_flops(g).total);
  const double pruned = evaluate(p, test_set, eo).top1;

  TrainOptions to;
  to.batch_size = 64;
  to.lr = 0.01;
  to.schedule = LrSchedule::kCosine;
  to.max_samples = 4096;
  to.seed = test::test_seed();
  to.threads = 2;
  to.progress = false;
  train(p, train_set, to);
  const double tuned = evaluate(p, test_set, eo).top1;
  std::string shown;
  for (const auto& [param, ratio] : ratios) shown += " " + param + "=" + std::to_string(ratio);
  std::printf("[   info   ] ratios%s; top-1 trained %.3f, pruned %.3f, fine-tuned %.3f\n",
              shown.c_str(), trained, pruned, tuned);
  // Over seeds 0-4, each under three kernel settings (trained_models.h): trained 0.929 to 0.963,
  // fine-tuned minus trained -0.015 to +0.004.
  EXPECT_GT(tuned, trained - 0.025) << "pruned " << pruned;
}

}  // namespace
}  // namespace slim
