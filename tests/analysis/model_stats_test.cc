#include "slim/analysis/model_stats.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>

#include "test_util.h"
#include "slim/exec/executor.h"
#include "slim/onnx/onnx_io.h"

namespace slim {
namespace {

TEST(ModelStats, CountsFloatParamsAndAllBytes) {
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 2, 4, 4});
  auto c = b.node("Conv", {x, b.init("w", at::randn({3, 2, 1, 1})), b.init("b", at::randn({3}))});
  auto r = b.node("Reshape", {c, b.init("shape", at::tensor({0, -1}, at::kLong))});
  b.output(r);
  Graph g = b.build();
  ParamStats s = count_params(g);
  EXPECT_EQ(s.count, 6 + 3);
  EXPECT_EQ(s.bytes, (6 + 3) * 4 + 2 * 8);
  EXPECT_EQ(s.tensors, 3);
  std::string p = test::temp_dir("stats") + "/m.onnx";
  onnx_save(g, p);
  EXPECT_EQ(file_size(p), static_cast<int64_t>(read_file(p).size()));
  EXPECT_THROW(file_size(p + ".missing"), Error);
}

TEST(ModelStats, LatencySummaryOfKnownSamples) {
  LatencyReport r;
  r.samples_ms = {5, 1, 3, 2, 4};
  latency_summarize(r);
  EXPECT_EQ(r.median_ms, 3);
  EXPECT_EQ(r.mean_ms, 3);
  EXPECT_EQ(r.min_ms, 1);
  EXPECT_EQ(r.p90_ms, 5);  // index floor(0.9 * 5) = 4 of the sorted samples
  r.samples_ms = {4, 1, 3, 2};
  latency_summarize(r);
  EXPECT_EQ(r.median_ms, 2.5);  // the mean of the middle two
  EXPECT_EQ(r.mean_ms, 2.5);
  r.samples_ms = {12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1};
  latency_summarize(r);
  EXPECT_EQ(r.median_ms, 6.5);
  EXPECT_EQ(r.p90_ms, 11);  // index floor(10.8) = 10
  EXPECT_EQ(r.min_ms, 1);
  r.samples_ms.clear();
  EXPECT_THROW(latency_summarize(r), Error);
}

// measure_latency on a Gemm of known cost, against clocks it does not control: the timed runs lie
// inside the test's own wall time, they hold the per-node times of the same runs (profiling), and
// 2^31 multiply-accumulates cannot take less than 0.1 ms on one thread (that would be 20 TMAC/s;
// a fast AVX-512 core does about 0.1 TMAC/s). A wrong unit or a timer around the wrong code fails.
TEST(ModelStats, LatencyReportIsConsistent) {
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 2048});
  b.output(b.node("Gemm", {x, b.init("w", at::randn({2048, 1024}))}, {}, "fc"));
  Graph g = b.build();
  LatencyOptions o;
  o.batch = 1024;  // 1024 x 2048 x 1024 = 2^31 MACs a run
  o.threads = 1;
  o.runs = 5;
  o.warmup = 1;
  o.profile = true;
  const auto t0 = std::chrono::steady_clock::now();
  LatencyReport r = measure_latency(g, o);
  const double wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.samples_ms.size(), 5u);
  EXPECT_EQ(r.runs, 5);
  EXPECT_EQ(r.threads, 1);
  EXPECT_EQ(r.batch, 1024);
  double sum = 0;
  for (double s : r.samples_ms) sum += s;
  EXPECT_LT(sum, wall_ms) << "the timed runs take longer than the call that ran them";
  EXPECT_GT(r.min_ms, 0.1) << "2^31 MACs in " << r.min_ms << " ms";
  EXPECT_EQ(r.min_ms, *std::min_element(r.samples_ms.begin(), r.samples_ms.end()));
  ASSERT_EQ(r.per_node.size(), 1u);
  EXPECT_EQ(r.per_node[0].runs, 5);
  EXPECT_LE(r.per_node[0].total_ms, sum) << "the node took longer than the runs it is part of";
  EXPECT_GT(r.per_node[0].total_ms, 0.5 * sum) << "the Gemm is most of each run";
  o.runs = 0;
  EXPECT_THROW(measure_latency(g, o), Error);
}

}  // namespace
}  // namespace slim
