// Fake quantization math and the FakeQuant kernel against plain loops written from PaddleSlim's
// formulas (b = 2^(bits-1) - 1, q = round(clip(x, -s, s) * b / s), round half to even).
#include <gtest/gtest.h>

#include <cmath>

#include "slim/exec/executor.h"
#include "slim/quant/fake_quant.h"
#include "slim/quant/quant_options.h"
#include "test_util.h"

namespace slim {
namespace {

/// Plain per-element reference: clip to [lo_s, s], divide by the float32 step, round half to
/// even, clamp to the level range.
float ref_level(float x, float s, int bits, bool is_unsigned) {
  const double b = is_unsigned ? std::ldexp(1.0, bits) - 1 : std::ldexp(1.0, bits - 1) - 1;
  if (s <= 0) return 0;
  const float step = static_cast<float>(s / b);
  double q = std::nearbyint(static_cast<double>(x / step));  // default rounding: half to even
  return static_cast<float>(std::min(std::max(q, is_unsigned ? 0.0 : -b), b));
}

TEST(FakeQuant, PerTensorLevelsMatchAPlainLoopAtSeveralBitWidths) {
  at::manual_seed(0);
  at::Tensor x = at::randn({1000}) * 3;
  for (int bits : {2, 4, 8, 16}) {
    const float s = 2.5f;
    at::Tensor q = quantize_symmetric(x, at::scalar_tensor(s), bits);
    auto xa = x.accessor<float, 1>();
    auto qa = q.accessor<float, 1>();
    for (int64_t i = 0; i < x.numel(); ++i)
      ASSERT_EQ(qa[i], ref_level(xa[i], s, bits, false)) << "bits " << bits << " x " << xa[i];
    // Clipping: nothing beyond +-b.
    EXPECT_EQ(q.abs().max().item<float>(), static_cast<float>(quant_bound(bits)));
  }
}

TEST(FakeQuant, RoundsHalfToEvenAndClips) {
  // Threshold 127 with 8 bits: step 1, so levels are round(x) clipped to [-127, 127].
  at::Tensor x = at::tensor({0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 200.f, -200.f, 126.6f});
  at::Tensor q = quantize_symmetric(x, at::scalar_tensor(127.f), 8);
  EXPECT_TRUE(at::equal(q, at::tensor({0.f, 2.f, 2.f, -0.f, -2.f, 127.f, -127.f, 127.f})))
      << q;
  at::Tensor dq = quant_dequant(x, at::scalar_tensor(127.f), 8);
  EXPECT_FLOAT_EQ(dq[5].item<float>(), 127.f);
}

TEST(FakeQuant, PerChannelScalesFollowTheirAxisAndZeroChannelsStayZero) {
  at::manual_seed(1);
  at::Tensor w = at::randn({4, 3, 3, 3});
  w[2].zero_();
  at::Tensor s = abs_max(w, 0);
  ASSERT_EQ(s.sizes(), at::IntArrayRef({4}));
  EXPECT_EQ(s[2].item<float>(), 0.f);
  at::Tensor q = quantize_symmetric(w, s, 8, 0);
  for (int64_t c = 0; c < 4; ++c) {
    const float sc = s[c].item<float>();
    at::Tensor wc = w[c].flatten(), qc = q[c].flatten();
    for (int64_t i = 0; i < wc.numel(); ++i)
      ASSERT_EQ(qc[i].item<float>(), ref_level(wc[i].item<float>(), sc, 8, false));
    if (sc > 0) EXPECT_EQ(qc.abs().max().item<float>(), 127.f) << "channel max maps to b";
  }
  // Axis 1 (a Gemm weight [K, N] has its output channels on axis 1).
  at::Tensor m = at::randn({5, 6});
  at::Tensor s1 = abs_max(m, 1);
  EXPECT_TRUE(at::allclose(s1, std::get<0>(m.abs().max(0))));
  at::Tensor q1 = quantize_symmetric(m, s1, 8, 1);
  EXPECT_EQ(q1.index({at::indexing::Slice(), 3}).abs().max().item<float>(), 127.f);
}

TEST(FakeQuant, UnsignedModeUses255LevelsOnZeroToThreshold) {
  at::Tensor x = at::tensor({-1.f, 0.f, 0.3f, 1.f, 2.f});
  at::Tensor q = quantize_symmetric(x, at::scalar_tensor(1.f), 8, -1, true);
  for (int64_t i = 0; i < x.numel(); ++i)
    EXPECT_EQ(q[i].item<float>(), ref_level(x[i].item<float>(), 1.f, 8, true));
  EXPECT_EQ(q[3].item<float>(), 255.f);
  EXPECT_EQ(q[0].item<float>(), 0.f);
}

TEST(FakeQuant, StraightThroughGradientIsOne) {
  at::Tensor x = (at::randn({10}) * 2).requires_grad_(true);
  at::Tensor y = fake_quant_ste(x, at::scalar_tensor(1.f), 8);
  EXPECT_TRUE(at::equal(y.detach(), quant_dequant(x, at::scalar_tensor(1.f), 8)));
  y.sum().backward();
  EXPECT_TRUE(at::equal(x.grad(), at::ones_like(x)));
}

/// A graph x -> FakeQuant(activation) -> y.
Graph fake_quant_graph(const std::string& algo, int64_t state_size, int64_t window = 3) {
  test::GraphBuilder b;
  std::string x = b.input("x", {kDynamicDim, 4});
  std::string st = b.init("state", at::zeros({state_size}));
  std::string y = b.node("FakeQuant", {x, st},
                         {{"target", std::string("activation")},
                          {"algo", algo},
                          {"bits", int64_t{8}},
                          {"moving_rate", 0.9f},
                          {"window_size", window}},
                         "fq");
  b.output(y);
  Graph g = b.build();
  g.trainable.clear();
  return g;
}

TEST(FakeQuant, MovingAverageAbsMaxFollowsPaddleSlimsFormula) {
  Graph g = fake_quant_graph("moving_average_abs_max", 3);
  Executor ex(g);
  ex.set_training(true);
  double state = 0, accum = 0;
  for (float m : {2.f, 4.f, 1.f}) {
    at::Tensor x = at::tensor({m, -m / 2, 0.f, m / 3}).reshape({1, 4});
    ex.run({x});
    state = 0.9 * state + 1;
    accum = 0.9 * accum + m;
  }
  const at::Tensor& st = g.initializers.at("state");
  EXPECT_NEAR(st[1].item<double>(), state, 1e-5);
  EXPECT_NEAR(st[2].item<double>(), accum, 1e-5);
  EXPECT_NEAR(st[0].item<double>(), accum / state, 1e-5);
  // Inference uses the frozen scale: 10 clips to it.
  ex.set_training(false);
  at::Tensor y = ex.run({at::tensor({10.f, 0.f, 0.f, 0.f}).reshape({1, 4})})[0];
  EXPECT_NEAR(y[0][0].item<double>(), accum / state, 1e-5);
}

TEST(FakeQuant, AbsMaxAndRangeAbsMaxTrackTheirWindow) {
  Graph g = fake_quant_graph("range_abs_max", 2 + 3, 3);
  Executor ex(g);
  ex.set_training(true);
  std::vector<float> maxima{5, 1, 2, 3, 0.5};
  std::vector<float> expect{5, 5, 5, 3, 3};  // max of the last three batch maxima
  for (size_t i = 0; i < maxima.size(); ++i) {
    ex.run({at::full({1, 4}, maxima[i])});
    EXPECT_FLOAT_EQ(g.initializers.at("state")[0].item<float>(), expect[i]) << "batch " << i;
  }
  Graph a = fake_quant_graph("abs_max", 1);
  Executor ea(a);
  ea.set_training(true);
  ea.run({at::tensor({1.f, -7.f, 2.f, 0.f}).reshape({1, 4})});
  EXPECT_FLOAT_EQ(a.initializers.at("state")[0].item<float>(), 7.f);
}

// A FakeQuant(weight) node in a graph: per-channel values from plain loops in inference and in
// training, and in training the straight-through gradient: d(sum(y * r))/dW for y = x @ FQ(W) is
// x^T r, as if FakeQuant were the identity (PaddleSlim's backward), summed in plain loops here.
TEST(FakeQuant, WeightTargetQuantizesPerChannelWithGradient) {
  constexpr int64_t kIn = 3, kOut = 4, kBatch = 5;
  test::GraphBuilder b;
  std::string x = b.input("x", {kDynamicDim, kIn});
  at::manual_seed(11);
  const at::Tensor w0 = at::randn({kIn, kOut}) * at::tensor({0.5f, 1.f, 2.f, 4.f});
  std::string w = b.init("w", w0.clone());
  // A Gemm weight [K, N] has its output channels on axis 1.
  std::string fq = b.node("FakeQuant", {w},
                          {{"target", std::string("weight")},
                           {"algo", std::string("channel_wise_abs_max")},
                           {"bits", int64_t{4}},
                           {"axis", int64_t{1}}},
                          "w_fq");
  b.output(b.node("MatMul", {x, fq}, {}, "mm"));
  Graph g = b.build();
  ASSERT_TRUE(g.trainable.count("w"));
  const at::Tensor xv = at::randn({kBatch, kIn});
  const at::Tensor r = at::randn({kBatch, kOut});

  // Plain loops: per output channel n, s_n = max_k |W[k][n]|; level = round(W / (s_n / 7)).
  std::vector<float> want(kIn * kOut);
  for (int64_t n = 0; n < kOut; ++n) {
    float s = 0;
    for (int64_t k = 0; k < kIn; ++k) s = std::max(s, std::abs(w0[k][n].item<float>()));
    for (int64_t k = 0; k < kIn; ++k)
      want[k * kOut + n] = ref_level(w0[k][n].item<float>(), s, 4, false) * (s / 7.f);
  }
  std::vector<double> grad(kIn * kOut, 0.0);
  for (int64_t k = 0; k < kIn; ++k)
    for (int64_t n = 0; n < kOut; ++n)
      for (int64_t i = 0; i < kBatch; ++i)
        grad[k * kOut + n] += xv[i][k].item<double>() * r[i][n].item<double>();

  Executor ex(g);
  for (bool training : {false, true}) {
    ex.set_training(training);
    auto out = ex.run_named({{"x", xv}}, {fq, "mm_out"});
    const at::Tensor got = out.at(fq).detach();
    for (int64_t i = 0; i < kIn * kOut; ++i)
      EXPECT_NEAR(got.flatten()[i].item<float>(), want[i], 1e-6 * std::abs(want[i]) + 1e-7)
          << (training ? "training" : "inference") << ", element " << i;
    if (!training) continue;
    (out.at("mm_out") * r).sum().backward();
    const at::Tensor& wt = g.initializers.at("w");
    ASSERT_TRUE(wt.grad().defined()) << "no gradient reached the weight";
    for (int64_t i = 0; i < kIn * kOut; ++i)
      EXPECT_NEAR(wt.grad().flatten()[i].item<double>(), grad[i], 1e-5) << "element " << i;
  }
  // The reference itself: each channel's max maps to itself.
  for (int64_t n = 0; n < kOut; ++n) {
    float s = 0, m = 0;
    for (int64_t k = 0; k < kIn; ++k) {
      s = std::max(s, std::abs(w0[k][n].item<float>()));
      m = std::max(m, std::abs(want[k * kOut + n]));
    }
    EXPECT_NEAR(m, s, 1e-6 * s) << "channel " << n;
  }
  ex.set_training(false);
}

TEST(QuantOptions, BadValuesAreClearErrors) {
  QuantOptions o;
  o.weight_bits = 1;
  EXPECT_NE(test::error_of([&] { check_quant_options(o); }).find("weight_bits must be in 2..16, got 1"),
            std::string::npos);
  o = {};
  o.act_bits = 17;
  EXPECT_NE(test::error_of([&] { check_quant_options(o); }).find("got 17"), std::string::npos);
  o = {};
  o.quantize_op_types = {"Conv", "Relu"};
  EXPECT_NE(test::error_of([&] { check_quant_options(o); }).find("'Relu'"), std::string::npos);
  o = {};
  o.not_quant_pattern = "conv(";
  EXPECT_NE(test::error_of([&] { check_quant_options(o); }).find("conv("), std::string::npos);
  EXPECT_NE(test::error_of([] { act_quant_algo_from_string("ema"); }).find("'ema'"),
            std::string::npos);
}

}  // namespace
}  // namespace slim
