#include "slim/analysis/model_stats.h"

#include <gtest/gtest.h>

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

TEST(ModelStats, LatencyReportIsConsistent) {
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 8});
  b.output(b.node("Gemm", {x, b.init("w", at::randn({8, 4}))}));
  Graph g = b.build();
  LatencyOptions o;
  o.batch = 3;
  o.threads = 1;
  o.runs = 7;
  o.warmup = 1;
  LatencyReport r = measure_latency(g, o);
  EXPECT_EQ(r.samples_ms.size(), 7u);
  EXPECT_EQ(r.threads, 1);
  EXPECT_EQ(r.batch, 3);
  EXPECT_LE(r.min_ms, r.median_ms);
  EXPECT_LE(r.median_ms, r.p90_ms);
  o.runs = 0;
  EXPECT_THROW(measure_latency(g, o), Error);
}

}  // namespace
}  // namespace slim
