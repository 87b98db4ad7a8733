#include "slim/prune/flops_target.h"

#include <gtest/gtest.h>

#include "slim/analysis/flops.h"
#include "slim/zoo/zoo.h"
#include "test_util.h"

namespace slim {
namespace {

using test::error_of;

/// The sensitivities PaddleSlim's tutorial notebook prints, extended by its ratio-0.4 run.
Sensitivities tutorial_sensitivities() {
  Sensitivities s;
  s["conv2_2_sep_weights"] = {
      {0.1, 0.025107263}, {0.2, 0.040694658}, {0.3, 0.22795272}, {0.4, 0.06348718}};
  s["conv2_1_sep_weights"] = {
      {0.1, 0.03598702}, {0.2, 0.031697918}, {0.3, 0.088712215}, {0.4, 0.15917951}};
  s["conv3_1_sep_weights"] = {
      {0.1, -0.00010458791}, {0.2, 0.0047076386}, {0.3, 0.005439941}, {0.4, 0.034871764}};
  s["conv4_1_sep_weights"] = {
      {0.1, 0.0015692544}, {0.2, 0.0019876685}, {0.3, 0.035359368}, {0.4, 0.16246155}};
  s["conv3_2_sep_weights"] = {
      {0.1, -0.0050214026}, {0.2, 0.0008369523}, {0.3, 0.008055261}, {0.4, 0.115384646}};
  return s;
}

int64_t pruned_flops(const Graph& g, const std::map<std::string, double>& ratios, int64_t align) {
  Graph p = g.clone();
  PruneOptions o;
  o.ratios = ratios;
  o.align = align;
  prune_channels(p, o);
  return count_flops(p).total;
}

TEST(FlopsTarget, BisectsTheLossThresholdOfASensitivityTable) {
  Graph g = test::mnist_mobilenet_v1();
  const auto s = tutorial_sensitivities();
  PruneOptions base;
  auto r = flops_target_by_sensitivity(g, s, 0.10, base);
  EXPECT_EQ(r.flops_before, 10896832);
  EXPECT_LE(r.flops_after, 0.90 * 10896832);
  EXPECT_EQ(r.flops_after, pruned_flops(g, r.ratios, 1));
  // The smallest such loss: a little less falls short of the target.
  EXPECT_GT(pruned_flops(g, ratios_by_loss(s, r.threshold - 1e-6), 1), 0.90 * 10896832);
  // The ratios lie between those just below the threshold and those at it, and the FLOPs
  // removed are the target, not past it (1% of MobileNetV1's FLOPs is a few channels here).
  const auto at = ratios_by_loss(s, r.threshold), below = ratios_by_loss(s, r.threshold - 1e-6);
  for (const auto& [param, ratio] : r.ratios) {
    ASSERT_TRUE(at.count(param)) << param;
    EXPECT_LE(ratio, at.at(param) + 1e-12) << param;
    EXPECT_GE(ratio, below.count(param) ? below.at(param) - 1e-12 : 0.0) << param;
  }
  EXPECT_GT(r.flops_after, 0.89 * 10896832);
  // Five convs at <= 40% cannot remove half of MobileNetV1's FLOPs.
  auto err = error_of([&] { flops_target_by_sensitivity(g, s, 0.5, base); });
  EXPECT_NE(err.find("reach at most"), std::string::npos) << err;
  EXPECT_NE(error_of([&] { flops_target_by_sensitivity(g, s, 1.5, base); }).find("(0, 1)"),
            std::string::npos);
}

TEST(FlopsTarget, TiedLossesStepOnlyAsFarAsTheTarget) {
  // A model at chance (or one that loses nothing anywhere) has every loss 0: PaddleSlim's rule
  // then cuts every conv at its largest analysed ratio whatever the target.
  Graph g = test::mnist_mobilenet_v1();
  Sensitivities s;
  for (const auto& p : prunable_params(g))
    for (int i = 1; i <= 9; ++i) s[p][0.1 * i] = 0.0;
  for (const auto& [param, ratio] : ratios_by_loss(s, 0.0)) EXPECT_NEAR(ratio, 0.9, 1e-9);
  for (int64_t align : {1, 8}) {
    PruneOptions base;
    base.align = align;
    auto r = flops_target_by_sensitivity(g, s, 0.3, base);
    EXPECT_LE(r.flops_after, 0.70 * 10896832) << "align " << align;
    EXPECT_GT(r.flops_after, 0.67 * 10896832) << "align " << align;
    EXPECT_EQ(r.flops_after, pruned_flops(g, r.ratios, align));
    // Every param moved by the same fraction, up to one channel rounding step.
    for (const auto& [param, ratio] : r.ratios) {
      EXPECT_NEAR(ratio, r.ratios.begin()->second, 0.1) << param;
    }
  }
}

TEST(FlopsTarget, GlobalRankingReachesHalfTheFlopsAligned) {
  Graph g = test::mnist_mobilenet_v1();
  PruneOptions base;
  base.align = 8;
  auto r = flops_target_global(g, 0.5, base);
  EXPECT_LE(r.flops_after, 0.5 * 10896832);
  EXPECT_GT(r.flops_after, 0.4 * 10896832);  // not wildly past the target
  Graph p = g.clone();
  base.ratios = r.ratios;
  auto rep = prune_channels(p, base);
  EXPECT_EQ(count_flops(p).total, r.flops_after);
  EXPECT_GT(rep.pruned.size(), 5u);
  for (const auto& pg : rep.pruned) {
    EXPECT_EQ(pg.kept % 8, 0) << pg.master;
    EXPECT_GE(pg.kept, pg.channels / 10) << pg.master;  // max_ratio 0.9
  }
  // Restricting the search to a few layers that cannot reach the target is a clear error.
  auto err = error_of([&] { flops_target_global(g, 0.5, base, {"conv2_1_sep_weights"}); });
  EXPECT_NE(err.find("reaches only"), std::string::npos) << err;
}

}  // namespace
}  // namespace slim
