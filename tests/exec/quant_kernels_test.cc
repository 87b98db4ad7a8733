// QuantizeLinear / DequantizeLinear against the formulas written out: round half to even,
// saturation, per-axis scales and zero points, int8 and uint8 (ONNX's own node tests cover the
// uint8 per-tensor and per-axis examples in conformance_test.cc).
#include <gtest/gtest.h>

#include <cmath>

#include "../test_util.h"
#include "slim/exec/executor.h"

namespace slim {
namespace {

Graph qdq_graph(const at::Tensor& scale, const at::Tensor& zp, int64_t axis) {
  test::GraphBuilder b;
  auto x = b.input("x", {2, 3});
  auto q = b.node("QuantizeLinear", {x, b.init("s", scale), b.init("z", zp)}, {{"axis", axis}}, "q");
  auto d = b.node("DequantizeLinear", {q, "s", "z"}, {{"axis", axis}}, "dq");
  b.output(q, zp.scalar_type());
  b.output(d);
  return b.build();
}

TEST(QuantKernels, Int8PerAxisRoundsHalfToEvenAndSaturates) {
  at::Tensor x = at::tensor({0.5f, 2.5f, -1.5f, 200.f, -200.f, 7.49f}).reshape({2, 3});
  at::Tensor scale = at::tensor({1.f, 0.5f});       // per row (axis 0)
  at::Tensor zp = at::tensor({int8_t{0}, int8_t{-3}});
  Graph g = qdq_graph(scale, zp, 0);
  Executor ex(g);
  auto out = ex.run({x});
  // Row 0, scale 1, zp 0: 0.5 -> 0, 2.5 -> 2, -1.5 -> -2 (halves to even).
  // Row 1, scale 0.5, zp -3: 400 -> 127 (saturated), -400 -> -128, 14.98 -> 15 - 3 = 12.
  at::Tensor want_q = at::tensor({int8_t{0}, int8_t{2}, int8_t{-2}, int8_t{127}, int8_t{-128},
                                  int8_t{12}}).reshape({2, 3});
  ASSERT_EQ(out[0].scalar_type(), at::kChar);
  EXPECT_TRUE(at::equal(out[0], want_q)) << out[0];
  at::Tensor want_d = at::tensor({0.f, 2.f, -2.f, 65.f, -62.5f, 7.5f}).reshape({2, 3});
  EXPECT_TRUE(at::allclose(out[1], want_d)) << out[1];
}

TEST(QuantKernels, Uint8PerTensorAndBadScaleLength) {
  at::Tensor x = at::tensor({-1.f, 0.f, 1.f, 2.f, 300.f, 0.75f}).reshape({2, 3});
  Graph g = qdq_graph(at::scalar_tensor(0.5f), at::scalar_tensor(uint8_t{10}, at::kByte), 1);
  Executor ex(g);
  auto out = ex.run({x});
  at::Tensor want_q = at::tensor({uint8_t{8}, uint8_t{10}, uint8_t{12}, uint8_t{14}, uint8_t{255},
                                  uint8_t{12}}).reshape({2, 3});  // 1.5 -> 2 -> 12
  EXPECT_TRUE(at::equal(out[0], want_q)) << out[0];

  Graph bad = qdq_graph(at::tensor({1.f, 2.f}), at::tensor({uint8_t{0}, uint8_t{0}}), 1);
  Executor bx(bad);
  std::string e = test::error_of([&] { bx.run({x}); });
  EXPECT_NE(e.find("QuantizeLinear node 'q'"), std::string::npos) << e;
  EXPECT_NE(e.find("y_scale has 2 values but input dim 1 (axis) is 3"), std::string::npos) << e;
}

}  // namespace
}  // namespace slim
