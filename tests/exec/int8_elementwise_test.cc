// The one-pass per-tensor QuantizeLinear, DequantizeLinear and int8 residual Add (AVX2 where the
// CPU has it), and the int8 MaxPool, table and squeeze-excitation steps, against the ONNX formulas
// written out with ATen ops: every level must be equal, on sizes that leave a tail after the 8-wide
// vector loop, with halves that round to even, values that saturate, int8 and uint8 levels (zero
// points 0, -3, 128), and NHWC inputs.
#include <gtest/gtest.h>

#include <cmath>

#include "../test_util.h"
#include "slim/exec/executor.h"

namespace slim {
namespace {

/// ONNX QuantizeLinear, written out: saturate(round_half_even(x / s) + zp).
at::Tensor quantize_ref(const at::Tensor& x, float s, int zp, at::ScalarType t) {
  const double lo = t == at::kByte ? 0 : -128, hi = t == at::kByte ? 255 : 127;
  return at::clamp(at::round(x / s) + zp, lo, hi).to(t);
}

/// ONNX DequantizeLinear, written out: (x - zp) * s.
at::Tensor dequantize_ref(const at::Tensor& q, float s, int zp) {
  return (q.to(at::kFloat) - static_cast<float>(zp)) * s;
}

at::Tensor zero_point(int zp, at::ScalarType t) {
  return t == at::kByte ? at::scalar_tensor(zp, at::kByte) : at::scalar_tensor(zp, at::kChar);
}

struct LevelsCase {
  at::ScalarType type;
  int zp;
};
const LevelsCase kCases[] = {{at::kChar, 0}, {at::kChar, -3}, {at::kByte, 0}, {at::kByte, 128}};

/// Random floats plus exact halves of the step (ties) and values far out of range.
at::Tensor test_values(const std::vector<int64_t>& shape, float s) {
  at::Tensor x = at::randn(shape) * (60 * s);
  at::Tensor flat = x.view({-1});
  const int64_t n = flat.numel();
  for (int64_t i = 0; i < n; i += 5) flat[i] = (static_cast<float>(i % 41) - 20.5f) * s;
  flat[1] = 1000 * s;
  flat[2] = -1000 * s;
  return x;
}

TEST(Int8Elementwise, QuantizeAndDequantizeEqualTheFormulas) {
  const float s = 0.05f;
  for (const auto& c : kCases) {
    for (bool nhwc : {false, true}) {
      SCOPED_TRACE(std::string(c.type == at::kByte ? "u8" : "s8") + " zp " + std::to_string(c.zp) +
                   (nhwc ? ", NHWC" : ""));
      test::GraphBuilder b;
      auto x = b.input("x", {kDynamicDim, 3, 7, 5});
      auto q = b.node("QuantizeLinear",
                      {x, b.init("s", at::scalar_tensor(s)), b.init("z", zero_point(c.zp, c.type))},
                      {}, "q");
      auto d = b.node("DequantizeLinear", {q, "s", "z"}, {}, "dq");
      b.output(q, c.type);
      b.output(d);
      Graph g = b.build();
      Executor ex(g);
      at::manual_seed(3);
      // 2 x 105 values: 26 full vectors of 8 and a tail of 2.
      at::Tensor in = test_values({2, 3, 7, 5}, s);
      if (nhwc) in = in.contiguous(at::MemoryFormat::ChannelsLast);
      auto named = ex.run_named({{"x", in}}, {q, d});
      const at::Tensor &got_q = named.at(q), &got_d = named.at(d);
      const at::Tensor want_q = quantize_ref(in, s, c.zp, c.type);
      ASSERT_EQ(got_q.scalar_type(), c.type);
      EXPECT_TRUE(at::equal(got_q, want_q))
          << (got_q.to(at::kInt) - want_q.to(at::kInt)).abs().max();
      EXPECT_TRUE(at::equal(got_d, dequantize_ref(want_q, s, c.zp)));
    }
  }
}

TEST(Int8Elementwise, QuantizeDividesExactlyAtAnyScale) {
  // QuantizeLinear's loops must give the level of the division by the scale, at scales whose
  // reciprocal is inexact (and a denormal one whose reciprocal overflows), on random values and on
  // the floats just around each half (k + 0.5) * scale.
  for (float s : {0.05f, 1.f / 3, 0.0173f, 7.3e-3f, 0.9999999f, 3e-39f}) {
    SCOPED_TRACE("scale " + std::to_string(s));
    std::vector<float> v;
    at::manual_seed(11);
    at::Tensor r = (at::rand({20000}) * 600 - 300) * s;
    for (int64_t i = 0; i < r.numel(); ++i) v.push_back(r[i].item<float>());
    for (int k = -300; k < 300; ++k) {
      float half = (static_cast<float>(k) + 0.5f) * s;
      for (int step = 0; step < 3; ++step) {
        v.push_back(half);
        half = std::nextafter(half, 1e30f);
      }
      half = (static_cast<float>(k) + 0.5f) * s;
      for (int step = 0; step < 3; ++step) v.push_back(half = std::nextafter(half, -1e30f));
    }
    at::Tensor in = at::tensor(v).view({1, 1, 1, -1});
    for (const auto& c : {LevelsCase{at::kChar, 0}, LevelsCase{at::kByte, 128}}) {
      test::GraphBuilder b;
      auto x = b.input("x", {1, 1, 1, kDynamicDim});
      b.output(b.node("QuantizeLinear",
                      {x, b.init("s", at::scalar_tensor(s)), b.init("z", zero_point(c.zp, c.type))},
                      {}, "q"),
               c.type);
      Graph g = b.build();
      at::Tensor got = Executor(g).run({in})[0], want = quantize_ref(in, s, c.zp, c.type);
      EXPECT_TRUE(at::equal(got, want)) << (got.to(at::kInt) - want.to(at::kInt)).abs().max();
    }
  }
}

TEST(Int8Elementwise, ResidualAddEqualsTheFormulas) {
  // Integer inputs of different types and zero points, DQ each, Add, [Relu], Q: the executor's
  // int8 Add step does it in one pass over the levels.
  const float sa = 0.03f, sb = 0.045f, sy = 0.06f;
  for (bool relu : {false, true}) {
    for (const auto& yc : kCases) {
      if (relu && yc.type != at::kByte) continue;
      SCOPED_TRACE(std::string(relu ? "relu, " : "") + (yc.type == at::kByte ? "u8" : "s8") +
                   " zp " + std::to_string(yc.zp));
      test::GraphBuilder b;
      auto a = b.input("a", {kDynamicDim, 3, 7, 5}, at::kChar);
      auto bb = b.input("b", {kDynamicDim, 3, 7, 5}, at::kByte);
      auto ad = b.node("DequantizeLinear", {a, b.init("sa", at::scalar_tensor(sa))}, {}, "dqa");
      auto bd = b.node(
          "DequantizeLinear",
          {bb, b.init("sb", at::scalar_tensor(sb)), b.init("zb", zero_point(128, at::kByte))}, {},
          "dqb");
      auto y = b.node("Add", {ad, bd}, {}, "add");
      if (relu) y = b.node("Relu", {y}, {}, "relu");
      auto yq =
          b.node("QuantizeLinear",
                 {y, b.init("sy", at::scalar_tensor(sy)), b.init("zy", zero_point(yc.zp, yc.type))},
                 {}, "q");
      b.output(yq, yc.type);
      Graph g = b.build();
      Executor ex(g);
      at::manual_seed(4);
      at::Tensor ia = at::randint(-128, 128, {3, 3, 7, 5}).to(at::kChar);
      at::Tensor ib = at::randint(0, 256, {3, 3, 7, 5}).to(at::kByte);
      at::Tensor got = ex.run({ia, ib})[0];
      // Int8 steps take zero points 0 and 128 (uint8 holding signed levels); others fall back
      // to the float kernels, with the same result.
      EXPECT_EQ(ex.int8_ops_last_run(), yc.zp == -3 ? 0 : 1);
      at::Tensor sum = dequantize_ref(ia, sa, 0) + dequantize_ref(ib, sb, 128);
      if (relu) sum = at::relu(sum);
      at::Tensor want = quantize_ref(sum, sy, yc.zp, yc.type);
      EXPECT_TRUE(at::equal(got, want)) << (got.to(at::kInt) - want.to(at::kInt)).abs().max();
    }
  }
}

/// x (levels of `type`, shape `x_shape`) -> DequantizeLinear(sx, zp) -> MaxPool(attrs) ->
/// QuantizeLinear(sy, zp), the pattern the int8 MaxPool step runs.
Graph dq_maxpool_q(at::ScalarType type, int zp, float sx, float sy,
                   const std::vector<int64_t>& x_shape, std::map<std::string, AttrValue> attrs) {
  test::GraphBuilder b;
  auto x = b.input("x", x_shape, type);
  auto xd = b.node("DequantizeLinear",
                   {x, b.init("sx", at::scalar_tensor(sx)), b.init("zx", zero_point(zp, type))}, {},
                   "dq");
  auto p = b.node("MaxPool", {xd}, std::move(attrs), "pool");
  auto yq =
      b.node("QuantizeLinear",
             {p, b.init("sy", at::scalar_tensor(sy)), b.init("zy", zero_point(zp, type))}, {}, "q");
  b.output(yq, type);
  return b.build();
}

TEST(Int8Elementwise, MaxPoolPoolsTheLevels) {
  // DQ -> MaxPool -> Q on the levels, with the output's scale equal to the input's (the levels
  // pass through) or not (requantized), for int8, uint8 and uint8 + 128 levels, NCHW and NHWC.
  using V = std::vector<int64_t>;
  const float sx = 0.04f;
  const LevelsCase kIn[] = {{at::kChar, 0}, {at::kByte, 0}, {at::kByte, 128}};
  for (const auto& xc : kIn) {
    for (float sy : {sx, 0.07f}) {
      for (bool nhwc : {false, true}) {
        for (bool ceil : {false, true}) {
          SCOPED_TRACE(std::string(xc.type == at::kByte ? "u8" : "s8") + " zp " +
                       std::to_string(xc.zp) + ", y scale " + std::to_string(sy) +
                       (nhwc ? ", NHWC" : "") + (ceil ? ", ceil_mode" : ""));
          std::map<std::string, AttrValue> attrs = {
              {"kernel_shape", V{3, 3}}, {"strides", V{2, 2}}, {"pads", V{1, 1, 1, 1}}};
          if (ceil) attrs = {{"kernel_shape", V{2, 2}}, {"strides", V{2, 2}}, {"ceil_mode", 1}};
          Graph g = dq_maxpool_q(xc.type, xc.zp, sx, sy, {kDynamicDim, 5, 9, 7}, attrs);
          Executor ex(g);
          at::manual_seed(5);
          const int64_t lo = xc.type == at::kByte ? 0 : -128;
          at::Tensor in = at::randint(lo, lo + 256, {2, 5, 9, 7}).to(xc.type);
          if (nhwc) in = in.contiguous(at::MemoryFormat::ChannelsLast);
          at::Tensor got = ex.run({in})[0];
          EXPECT_EQ(ex.int8_ops_last_run(), 1) << "the MaxPool did not run on the levels";
          at::Tensor pooled =
              ceil ? at::max_pool2d(dequantize_ref(in, sx, xc.zp), {2, 2}, {2, 2}, {0, 0}, {1, 1},
                                    true)
                   : at::max_pool2d(dequantize_ref(in, sx, xc.zp), {3, 3}, {2, 2}, {1, 1});
          at::Tensor want = quantize_ref(pooled, sy, xc.zp, xc.type);
          ASSERT_EQ(got.sizes(), want.sizes());
          EXPECT_TRUE(at::equal(got, want)) << (got.to(at::kInt) - want.to(at::kInt)).abs().max();
        }
      }
    }
  }
}

TEST(Int8Elementwise, MaxPoolWindowFollowsTheInputShape) {
  // auto_pad SAME_UPPER, kernel 5, stride 3: 9x9 inputs get pads of 1, 10x10 inputs pads of 2.
  // One executor runs both: the window it caches must follow the shape.
  using V = std::vector<int64_t>;
  Graph g = dq_maxpool_q(
      at::kByte, 0, 0.05f, 0.05f, {kDynamicDim, 4, kDynamicDim, kDynamicDim},
      {{"kernel_shape", V{5, 5}}, {"strides", V{3, 3}}, {"auto_pad", std::string("SAME_UPPER")}});
  Executor ex(g);
  at::manual_seed(6);
  for (int64_t side : {9, 10, 9}) {
    SCOPED_TRACE("side " + std::to_string(side));
    at::Tensor in = at::randint(0, 256, {1, 4, side, side}).to(at::kByte);
    at::Tensor got = ex.run({in})[0];
    EXPECT_EQ(ex.int8_ops_last_run(), 1);
    const int64_t pad = side == 9 ? 1 : 2;
    at::Tensor want = at::max_pool2d(in.to(at::kFloat), {5, 5}, {3, 3}, {pad, pad}).to(at::kByte);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_TRUE(at::equal(got, want));
  }
}

TEST(Int8Elementwise, ActivationsBetweenQuantizeStepsAreATableOfLevels) {
  // DQ -> f -> Q for EfficientNet's SiLU (Sigmoid and Mul, operands in either order), its
  // squeeze-excitation gate (Sigmoid), MobileNetV3's HardSwish and HardSigmoid, and a Clip:
  // every level equals the float nodes' result (int8 off), NCHW and NHWC.
  const float sx = 0.05f, sy = 0.03f;
  for (const std::string f : {"SiLU", "SiLU-swapped", "Sigmoid", "HardSwish", "HardSigmoid",
                              "Clip"}) {
    for (const auto& xc : {LevelsCase{at::kChar, 0}, LevelsCase{at::kByte, 128}}) {
      SCOPED_TRACE(f + (xc.type == at::kByte ? " u8" : " s8"));
      auto build = [&] {
        test::GraphBuilder b;
        auto x = b.input("x", {kDynamicDim, 6, 5, 7}, xc.type);
        auto xd = b.node("DequantizeLinear",
                         {x, b.init("sx", at::scalar_tensor(sx)),
                          b.init("zx", zero_point(xc.zp, xc.type))},
                         {}, "dq");
        std::string y;
        if (f == "SiLU" || f == "SiLU-swapped") {
          auto sg = b.node("Sigmoid", {xd}, {}, "sig");
          y = f == "SiLU" ? b.node("Mul", {xd, sg}, {}, "mul") : b.node("Mul", {sg, xd}, {}, "mul");
        } else if (f == "HardSigmoid") {
          y = b.node(f, {xd}, {{"alpha", 1.f / 6}, {"beta", 0.5f}}, "f");
        } else if (f == "Clip") {
          y = b.node(f, {xd, b.init("lo", at::scalar_tensor(-1.f)),
                         b.init("hi", at::scalar_tensor(2.f))},
                     {}, "f");
        } else {
          y = b.node(f, {xd}, {}, "f");
        }
        auto yq = b.node("QuantizeLinear",
                         {y, b.init("sy", at::scalar_tensor(sy)),
                          b.init("zy", zero_point(xc.zp, xc.type))},
                         {}, "q");
        b.output(yq, xc.type);
        return b.build();
      };
      Graph g = build(), ref_g = build();
      Executor ex(g), ref(ref_g);
      ref.set_int8(false);
      std::vector<std::string> planned;
      for (const auto& step : ex.plan()) planned.push_back(step.node->name + ":" + step.engine);
      EXPECT_EQ(planned.size(), 1u) << "DQ, f and Q as one step";
      const int64_t lo = xc.type == at::kByte ? 0 : -128;
      at::manual_seed(2);
      for (bool nhwc : {false, true}) {
        // Every level at least once.
        at::Tensor in = (at::arange(2 * 6 * 5 * 7) % 256 + lo).view({2, 6, 5, 7}).to(xc.type);
        if (nhwc) in = in.contiguous(at::MemoryFormat::ChannelsLast);
        at::Tensor got = ex.run({in})[0], want = ref.run({in})[0];
        EXPECT_EQ(ex.int8_ops_last_run(), 1);
        EXPECT_EQ(ref.int8_ops_last_run(), 0);
        ASSERT_EQ(got.sizes(), want.sizes());
        EXPECT_TRUE(at::equal(got.contiguous(), want.contiguous()))
            << (got.to(at::kInt) - want.to(at::kInt)).abs().max();
      }
      // Fetching the float value inside runs the nodes.
      auto named = ex.run_named({{"x", at::zeros({1, 6, 5, 7}, xc.type)}},
                                {f.rfind("SiLU", 0) == 0 ? "mul_out" : "f_out"});
      EXPECT_EQ(ex.int8_ops_last_run(), 0);
    }
  }
}

TEST(Int8Elementwise, SqueezeExcitationRunsOnTheLevels) {
  // MobileNetV3's and EfficientNet's squeeze-excitation between int8 steps: x_q -> DQ -> [fx]
  // feeds a GlobalAveragePool -> Q and a Mul by gate(DQ(s_q)) -> Q. Both run on x_q's levels (two
  // int8 steps, the DQ and fx skipped). The pooled levels equal the mean taken in double and
  // quantized; each output level equals QuantizeLinear(fx(x) * gate(s)) computed with ATen on the
  // dequantized tensors, s the pooled levels the step produced.
  const float sx = 0.05f, sp = 0.02f, sy = 0.03f;
  for (const std::string fx : {"none", "HardSwish", "SiLU"}) {
    for (const std::string gate : {"HardSigmoid", "Sigmoid"}) {
      for (const auto& xc : {LevelsCase{at::kChar, 0}, LevelsCase{at::kByte, 128}}) {
        SCOPED_TRACE(fx + ", " + gate + (xc.type == at::kByte ? ", u8" : ", s8"));
        auto build = [&] {
          test::GraphBuilder b;
          auto zp = [&](const std::string& n) { return b.init(n, zero_point(xc.zp, xc.type)); };
          auto x = b.input("x", {kDynamicDim, 24, 5, 7}, xc.type);
          auto xd = b.node("DequantizeLinear", {x, b.init("sx", at::scalar_tensor(sx)), zp("zx")},
                           {}, "dq");
          std::string xf = xd;
          if (fx == "HardSwish") xf = b.node("HardSwish", {xd}, {}, "fx");
          if (fx == "SiLU") xf = b.node("Mul", {xd, b.node("Sigmoid", {xd}, {}, "sig")}, {}, "fx");
          auto pooled = b.node("GlobalAveragePool", {xf}, {}, "gap");
          auto sq = b.node("QuantizeLinear",
                           {pooled, b.init("sp", at::scalar_tensor(sp)), zp("zp")}, {}, "gap_q");
          auto sd = b.node("DequantizeLinear",
                           {sq, b.init("sp2", at::scalar_tensor(sp)), zp("zp2")}, {}, "s_dq");
          auto g = gate == "Sigmoid"
                       ? b.node("Sigmoid", {sd}, {}, "gate")
                       : b.node("HardSigmoid", {sd}, {{"alpha", 1.f / 6}, {"beta", 0.5f}}, "gate");
          auto m = b.node("Mul", {g, xf}, {}, "mul");
          auto yq =
              b.node("QuantizeLinear", {m, b.init("sy", at::scalar_tensor(sy)), zp("zy")}, {}, "q");
          b.output(sq, xc.type);
          b.output(yq, xc.type);
          return b.build();
        };
        Graph graph = build();
        Executor ex(graph);
        std::vector<std::string> planned;
        for (const auto& step : ex.plan()) planned.push_back(step.node->name + ":" + step.engine);
        EXPECT_EQ(planned, (std::vector<std::string>{"gap:int8", "gate:int8"}));
        const int64_t lo = xc.type == at::kByte ? 0 : -128;
        for (bool nhwc : {false, true}) {
          SCOPED_TRACE(nhwc ? "NHWC" : "NCHW");
          at::manual_seed(3);
          at::Tensor in = at::randint(lo, lo + 256, {2, 24, 5, 7}).to(xc.type);
          if (nhwc) in = in.contiguous(at::MemoryFormat::ChannelsLast);
          std::vector<at::Tensor> got = ex.run({in});
          EXPECT_EQ(ex.int8_ops_last_run(), 2);
          // The float values the nodes compute.
          at::Tensor xd = dequantize_ref(in, sx, xc.zp);
          at::Tensor xf = fx == "HardSwish" ? at::hardswish(xd)
                          : fx == "SiLU"    ? xd * at::sigmoid(xd)
                                            : xd;
          at::Tensor want_pool = quantize_ref(xf.to(at::kDouble).mean({2, 3}, true).to(at::kFloat),
                                              sp, xc.zp, xc.type);
          ASSERT_EQ(got[0].sizes(), want_pool.sizes());
          EXPECT_TRUE(at::equal(got[0].contiguous(), want_pool))
              << (got[0].to(at::kInt) - want_pool.to(at::kInt)).abs().max();
          at::Tensor sd = dequantize_ref(got[0].contiguous(), sp, xc.zp);
          at::Tensor g =
              gate == "Sigmoid" ? at::sigmoid(sd) : at::clamp(sd * (1.0 / 6) + 0.5, 0.0, 1.0);
          at::Tensor want = quantize_ref(g * xf, sy, xc.zp, xc.type);
          ASSERT_EQ(got[1].sizes(), want.sizes());
          EXPECT_TRUE(at::equal(got[1].contiguous(), want.contiguous()))
              << (got[1].to(at::kInt) - want.to(at::kInt)).abs().max();
        }
        // Fetching the float value the two steps skip runs the nodes (both steps need it).
        if (fx != "none") {
          ex.run_named({{"x", at::zeros({1, 24, 5, 7}, xc.type)}}, {"fx_out", "q_out"});
          EXPECT_EQ(ex.int8_ops_last_run(), 0);
        }
      }
    }
  }
}

TEST(Int8Elementwise, SqueezeExcitationQuantizesAsTheDivisionOnHalves) {
  // The squeeze-excitation step's vector loop multiplies by the reciprocal of the output scale
  // and divides only near halves: with a gate of exactly 1 (HardSigmoid alpha 0, beta 1) and
  // output scales of 2, 2 + 2^-20 and 1/3 times the input's, every level (each of the 256 in
  // every channel) must be the division's, ties to even.
  const float sx = 0.0371f;
  for (float ratio : {2.f, 2.f + 1.f / (1 << 20), 1.f / 3}) {
    SCOPED_TRACE("output scale / input scale " + std::to_string(ratio));
    test::GraphBuilder b;
    auto x = b.input("x", {1, 20, 16, 16}, at::kByte);
    auto xd =
        b.node("DequantizeLinear",
               {x, b.init("sx", at::scalar_tensor(sx)), b.init("zx", zero_point(128, at::kByte))},
               {}, "dq");
    auto s = b.input("s", {1, 20, 1, 1}, at::kByte);
    auto sd =
        b.node("DequantizeLinear",
               {s, b.init("ss", at::scalar_tensor(0.1f)), b.init("zs", zero_point(0, at::kByte))},
               {}, "s_dq");
    auto g = b.node("HardSigmoid", {sd}, {{"alpha", 0.f}, {"beta", 1.f}}, "gate");
    auto m = b.node("Mul", {xd, g}, {}, "mul");
    b.output(b.node("QuantizeLinear",
                    {m, b.init("sy", at::scalar_tensor(sx * ratio)),
                     b.init("zy", zero_point(128, at::kByte))},
                    {}, "q"),
             at::kByte);
    Graph graph = b.build();
    Executor ex(graph);
    at::Tensor in = (at::arange(20 * 256) % 256).view({1, 20, 16, 16}).to(at::kByte);
    in = in.contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor got = ex.run({in, at::full({1, 20, 1, 1}, 7, at::kByte)})[0];
    EXPECT_EQ(ex.int8_ops_last_run(), 1);
    at::Tensor want = quantize_ref(dequantize_ref(in, sx, 128), sx * ratio, 128, at::kByte);
    EXPECT_TRUE(at::equal(got.contiguous(), want.contiguous()))
        << (got.to(at::kInt) - want.to(at::kInt)).abs().max();
  }
}

}  // namespace
}  // namespace slim
