// Latency tables: signatures are the executor's own steps (fused activations included), a table
// predicts the sum of its entries plus its fixed cost and round-trips through its file, and a
// space's cover vectors contain every step configuration its random members have.
#include "slim/nas/latency_table.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "slim/exec/executor.h"
#include "slim/nas/search.h"
#include "slim/nas/search_space.h"
#include "slim/passes/fold_batch_norm.h"
#include "test_util.h"

namespace slim {
namespace {

ZooOptions options(std::vector<int64_t> input, bool draw = true) {
  ZooOptions o;
  o.input = std::move(input);
  o.classes = 10;
  o.draw_weights = draw;
  return o;
}

TEST(LatencyTable, SignaturesAreTheStepsTheExecutorRuns) {
  auto space = search_space_make("mobilenet_v2");
  Graph g = space->build(space->init_tokens(), options({1, 28, 28}));
  const auto sigs = latency_signatures(g, 1);
  // Profile a run of the BN-folded network: one timed entry per step that ran.
  Graph f = g.clone();
  fold_batch_norm(f);
  Executor ex(f);
  ex.set_profiling(true);
  ex.run({at::randn({1, 1, 28, 28})});
  const auto prof = ex.profile();
  ASSERT_EQ(sigs.size(), prof.size());
  for (size_t i = 0; i < sigs.size(); ++i) {
    EXPECT_EQ(sigs[i].substr(0, sigs[i].find('[')), prof[i].op_type) << i;
    EXPECT_NE(sigs[i].find("[" + prof[i].engine + "]"), std::string::npos) << sigs[i];
  }
  // ReLU6 (Clip) runs inside the convs: every Clip is fused into its conv, none is a step.
  int convs = 0, fused = 0;
  for (const auto& s : sigs) {
    EXPECT_NE(s.rfind("Clip", 0), 0u) << s;
    convs += s.rfind("Conv[onednn]", 0) == 0;
    fused += s.find(" +Clip") != std::string::npos;
  }
  int clips = 0;
  for (const auto& n : f.nodes) clips += n.op_type == "Clip";
  EXPECT_EQ(fused, clips);
  EXPECT_GT(convs, 40);
  EXPECT_NE(sigs[0].find("x0=1x1x28x28 w1=32x1x3x3"), std::string::npos) << sigs[0];
  // The batch is part of the signature.
  EXPECT_NE(latency_signatures(g, 32)[0].find("x0=32x1x28x28"), std::string::npos);
}

TEST(LatencyTable, PredictsTheSumOfItsEntriesAndRoundTripsThroughItsFile) {
  auto space = search_space_make("mobilenet_v2");
  Graph g = space->build(space->init_tokens(), options({1, 28, 28}));
  LatencyTableOptions o;
  o.threads = 1;
  o.runs = 5;
  o.warmup = 1;
  LatencyTable t;
  int64_t calls = 0;
  const int64_t added = latency_table_add(t, g, o, [&](int64_t, int64_t) { ++calls; });
  const auto sigs = latency_signatures(g, 1);
  EXPECT_EQ(added, static_cast<int64_t>(std::set<std::string>(sigs.begin(), sigs.end()).size()));
  EXPECT_EQ(calls, added);
  ASSERT_TRUE(t.has_fixed);
  EXPECT_GE(t.step_ms, 0);
  EXPECT_LT(t.step_ms, 0.05);  // microseconds per step, not a conv's time
  // The entries of its steps in order, scaled, plus the per-step and fixed costs, added in the
  // order latency_predict adds them (another order may round differently in the last bits).
  double entries = 0;
  for (const auto& s : sigs) {
    ASSERT_TRUE(t.entries.count(s)) << s;
    EXPECT_GT(t.entries.at(s), 0) << s;
    entries += t.entries.at(s);
  }
  const double sum =
      t.scale * entries + t.step_ms * static_cast<double>(sigs.size()) + t.fixed_ms;
  EXPECT_DOUBLE_EQ(latency_predict(t, g), sum);
  EXPECT_EQ(latency_table_add(t, g, o), 0);  // nothing new
  const std::string dir = test::temp_dir("latency_table");
  latency_table_save(t, dir + "/t.json");
  LatencyTable back = latency_table_load(dir + "/t.json");
  EXPECT_EQ(back.entries, t.entries);
  EXPECT_DOUBLE_EQ(back.fixed_ms, t.fixed_ms);
  EXPECT_DOUBLE_EQ(back.step_ms, t.step_ms);
  EXPECT_DOUBLE_EQ(latency_predict(back, g), sum);
  // Another candidate has steps the table lacks: the error names one.
  Tokens other = space->init_tokens();
  other[4] = 1;  // first group's kernel 3 -> 5
  std::string err = test::error_of(
      [&] { latency_predict(t, space->build(other, options({1, 28, 28}, false))); });
  EXPECT_NE(err.find("latency table has no entry for the step 'Conv[onednn]"), std::string::npos)
      << err;
  EXPECT_NE(err.find("kernel_shape=5,5"), std::string::npos) << err;
  // Another batch or thread count is refused.
  LatencyTableOptions b32 = o;
  b32.batch = 32;
  EXPECT_NE(test::error_of([&] { latency_table_add(t, g, b32); }).find("measured at batch 1"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { latency_table_load(dir + "/none.json"); }).find("none.json"),
            std::string::npos);
}

TEST(LatencyTable, RoundsKeepEachEntrysSmallestMedianAndResumeByRound) {
  auto space = search_space_make("resnet");
  Graph g = space->build(space->init_tokens(), options({1, 16, 16}));
  LatencyTableOptions o;
  o.threads = 1;
  o.runs = 3;
  o.warmup = 0;
  LatencyTable t;
  const int64_t steps = latency_table_add(t, g, o);
  ASSERT_GT(steps, 0);
  EXPECT_TRUE(t.entry_rounds.empty());  // one round: nothing recorded beyond the entries
  ASSERT_EQ(t.network_ms.size(), 1u);
  const auto first = t.entries;
  const double first_network = t.network_ms.begin()->second;
  // A second round times every entry once more and keeps the smaller median.
  o.rounds = 2;
  int64_t calls = 0;
  EXPECT_EQ(latency_table_add(t, g, o, [&](int64_t done, int64_t todo) {
              ++calls;
              EXPECT_EQ(todo, steps);
              EXPECT_EQ(done, calls);
            }),
            steps);
  EXPECT_EQ(t.entries.size(), first.size());
  for (const auto& [sig, ms] : first) {
    EXPECT_LE(t.entries.at(sig), ms) << sig;
    EXPECT_EQ(t.entry_rounds.at(sig), 2) << sig;
  }
  EXPECT_EQ(latency_table_add(t, g, o), 0);  // round 2 done: nothing to time
  // Calibrating again keeps the network's smaller time, and the file keeps the rounds.
  latency_table_calibrate(t, {g}, o);
  EXPECT_LE(t.network_ms.begin()->second, first_network);
  const std::string dir = test::temp_dir("latency_rounds");
  latency_table_save(t, dir + "/t.json");
  LatencyTable back = latency_table_load(dir + "/t.json");
  EXPECT_EQ(back.entry_rounds, t.entry_rounds);
  EXPECT_EQ(back.network_ms, t.network_ms);
  o.rounds = 3;
  EXPECT_EQ(latency_table_add(back, g, o), steps);  // resumed: round 3 times each once
  o.rounds = 0;
  EXPECT_NE(test::error_of([&] { latency_table_add(back, g, o); }).find("rounds must be >= 1"),
            std::string::npos);
}

TEST(LatencyTable, TheSearchReadsLatencyFromATableInsteadOfTimingCandidates) {
  auto space = search_space_make("resnet");
  Graph g = space->build(space->init_tokens(), options({1, 16, 16}));
  LatencyTableOptions lo;
  lo.threads = 1;
  lo.runs = 3;
  lo.warmup = 0;
  auto table = std::make_shared<LatencyTable>();
  latency_table_add(*table, g, lo);
  table->fixed_ms = 1000;  // a prediction no measurement would give
  NasOptions o;
  o.space = "resnet";
  o.input = {1, 16, 16};
  o.latency_table = table;
  o.limits.max_latency_ms = 2000;
  NasCandidate c = nas_measure(*space, space->init_tokens(), o);
  EXPECT_FALSE(c.rejected) << c.reason;
  EXPECT_DOUBLE_EQ(c.latency_ms, latency_predict(*table, g));
  o.limits.max_latency_ms = 900;
  c = nas_measure(*space, space->init_tokens(), o);
  EXPECT_TRUE(c.rejected);
  EXPECT_EQ(c.reason.rfind("latency 10", 0), 0u) << c.reason;
  Tokens wider = space->init_tokens();
  wider[0] = 6;
  EXPECT_NE(test::error_of([&] { nas_measure(*space, wider, o); }).find("no entry for the step"),
            std::string::npos);
}

class LatencyCover : public ::testing::TestWithParam<std::string> {};

TEST_P(LatencyCover, CoverVectorsContainEveryStepOfRandomMembers) {
  auto space = search_space_make(GetParam());
  const auto cover = space->cover_tokens();
  std::set<std::string> covered;
  for (const auto& t : cover)
    for (const auto& s : latency_signatures(space->build(t, options({1, 28, 28}, false)), 1))
      covered.insert(s);
  std::printf("[   info   ] %s: %zu cover vectors, %zu step configurations\n",
              GetParam().c_str(), cover.size(), covered.size());
  const Tokens range = space->range_table();
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20; ++i) {
    Tokens t = tokens_random(range, rng);
    for (const auto& s : latency_signatures(space->build(t, options({1, 28, 28}, false)), 1))
      ASSERT_TRUE(covered.count(s)) << tokens_to_string(t) << ": " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(Spaces, LatencyCover, ::testing::Values("mobilenet_v2", "resnet"));

}  // namespace
}  // namespace slim
