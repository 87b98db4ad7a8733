// Executor behaviour on small graphs built in code, checked against the same computation written
// directly in ATen with a fixed seed.
#include "slim/exec/executor.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../test_util.h"

namespace slim {
namespace {

constexpr double kRtol = 1e-5;
constexpr double kAtol = 1e-5;
constexpr double kEps = 1e-5;

::testing::AssertionResult all_close(const at::Tensor& got, const at::Tensor& want,
                                     double rtol = kRtol, double atol = kAtol) {
  if (got.sizes() != want.sizes())
    return ::testing::AssertionFailure() << "shape " << shape_to_string(got.sizes().vec())
                                         << ", expected " << shape_to_string(want.sizes().vec());
  if (at::allclose(got, want, rtol, atol)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "max abs difference " << (got - want).abs().max().item<double>();
}

/// Initializers of the Conv -> BatchNormalization -> Relu -> GlobalAveragePool -> Flatten -> Gemm
/// network, kept apart so the ATen reference can use its own copies.
struct Params {
  at::Tensor conv_w, conv_b, bn_scale, bn_bias, bn_mean, bn_var, fc_w, fc_b;
};

Params make_params() {
  at::manual_seed(0);
  Params p;
  p.conv_w = at::randn({4, 3, 3, 3}) * 0.5;
  p.conv_b = at::randn({4});
  p.bn_scale = at::rand({4}) + 0.5;
  p.bn_bias = at::randn({4});
  p.bn_mean = at::randn({4});
  p.bn_var = at::rand({4}) + 0.5;
  p.fc_w = at::randn({5, 4});
  p.fc_b = at::randn({5});
  return p;
}

Params clone(const Params& p) {
  return {p.conv_w.clone(),  p.conv_b.clone(), p.bn_scale.clone(), p.bn_bias.clone(),
          p.bn_mean.clone(), p.bn_var.clone(), p.fc_w.clone(),     p.fc_b.clone()};
}

/// The network as a Slim graph with a dynamic batch: input "image" [N, 3, 8, 8], output [N, 5].
/// `bn_momentum` is ONNX's (running = running * momentum + batch * (1 - momentum)).
Graph make_net(const Params& p, float bn_momentum = 0.9f) {
  test::GraphBuilder b;
  auto x = b.input("image", {kDynamicDim, 3, 8, 8});
  auto conv =
      b.node("Conv", {x, b.init("conv_w", p.conv_w.clone()), b.init("conv_b", p.conv_b.clone())},
             {{"pads", std::vector<int64_t>{1, 1, 1, 1}}}, "conv");
  auto bn =
      b.node("BatchNormalization",
             {conv, b.init("bn_scale", p.bn_scale.clone()), b.init("bn_bias", p.bn_bias.clone()),
              b.init("bn_mean", p.bn_mean.clone()), b.init("bn_var", p.bn_var.clone())},
             {{"epsilon", static_cast<float>(kEps)}, {"momentum", bn_momentum}}, "bn");
  auto relu = b.node("Relu", {bn}, {}, "relu");
  auto pool = b.node("GlobalAveragePool", {relu}, {}, "pool");
  auto flat = b.node("Flatten", {pool}, {}, "flatten");
  auto fc = b.node("Gemm", {flat, b.init("fc_w", p.fc_w.clone()), b.init("fc_b", p.fc_b.clone())},
                   {{"transB", int64_t{1}}}, "fc");
  b.output(fc);
  return b.build();
}

/// The same network in ATen. In training mode `p.bn_mean`/`p.bn_var` are updated in place with
/// PyTorch's momentum (1 - ONNX momentum).
at::Tensor reference_net(const at::Tensor& x, Params& p, bool training, float bn_momentum = 0.9f,
                         at::Tensor* conv_out = nullptr) {
  at::Tensor y = at::conv2d(x, p.conv_w, p.conv_b, {1, 1}, {1, 1});
  if (conv_out) *conv_out = y;
  y = at::batch_norm(y, p.bn_scale, p.bn_bias, p.bn_mean, p.bn_var, training, 1.0 - bn_momentum,
                     kEps, /*cudnn_enabled=*/false);
  y = at::relu(y).mean({2, 3}, /*keepdim=*/true).flatten(1);
  return at::linear(y, p.fc_w, p.fc_b);
}

TEST(Executor, ConvBnReluInferenceMatchesAten) {
  Params p = make_params();
  Graph g = make_net(p);
  Executor ex(g);
  at::Tensor x = at::randn({2, 3, 8, 8});
  auto out = ex.run({x});
  ASSERT_EQ(out.size(), 1u);
  Params ref = clone(p);
  EXPECT_TRUE(all_close(out[0], reference_net(x, ref, false)));
  EXPECT_FALSE(out[0].requires_grad()) << "inference must not record autograd history";
  // Inference leaves the running statistics alone.
  EXPECT_TRUE(at::equal(g.initializers.at("bn_mean"), p.bn_mean));
  EXPECT_TRUE(at::equal(g.initializers.at("bn_var"), p.bn_var));
}

TEST(Executor, TrainingBatchNormUsesBatchStatisticsAndUpdatesRunningStatsInPlace) {
  for (float momentum : {0.9f, 0.7f}) {
    SCOPED_TRACE("momentum " + std::to_string(momentum));
    Params p = make_params();
    Graph g = make_net(p, momentum);
    const void* mean_storage = g.initializers.at("bn_mean").data_ptr();
    Executor ex(g);
    ex.set_training(true);
    at::Tensor x = at::randn({6, 3, 8, 8});
    at::Tensor got = ex.run({x})[0];

    Params ref = clone(p);
    at::Tensor conv;
    at::Tensor want = reference_net(x, ref, true, momentum, &conv);
    EXPECT_TRUE(all_close(got, want));
    // PyTorch semantics spelled out: batch mean and unbiased batch variance, weighted by
    // (1 - ONNX momentum).
    at::Tensor batch_mean = conv.mean({0, 2, 3});
    at::Tensor batch_var = conv.var({0, 2, 3}, /*unbiased=*/true);
    at::Tensor want_mean = p.bn_mean * momentum + batch_mean * (1 - momentum);
    at::Tensor want_var = p.bn_var * momentum + batch_var * (1 - momentum);
    const at::Tensor& mean = g.initializers.at("bn_mean");
    const at::Tensor& var = g.initializers.at("bn_var");
    EXPECT_TRUE(all_close(mean, want_mean));
    EXPECT_TRUE(all_close(var, want_var));
    EXPECT_TRUE(all_close(mean, ref.bn_mean));
    EXPECT_TRUE(all_close(var, ref.bn_var));
    EXPECT_EQ(mean.data_ptr(), mean_storage) << "running mean must be updated in place";

    // Back in eval mode the updated statistics are used and stay unchanged.
    at::Tensor trained_mean = mean.clone(), trained_var = var.clone();
    ex.set_training(false);
    at::Tensor eval_out = ex.run({x})[0];
    EXPECT_TRUE(all_close(eval_out, reference_net(x, ref, false, momentum)));
    EXPECT_TRUE(at::equal(g.initializers.at("bn_mean"), trained_mean));
    EXPECT_TRUE(at::equal(g.initializers.at("bn_var"), trained_var));
  }
}

TEST(Executor, DropoutActiveInTrainingIdentityInEval) {
  test::GraphBuilder b;
  auto x = b.input("x", {kDynamicDim, 1000});
  b.output(b.node("Dropout", {x}, {}, "drop"));
  Graph g = b.build();
  Executor ex(g);
  at::manual_seed(0);
  at::Tensor in = at::rand({4, 1000}) + 1.0;  // strictly positive: zeros come from the mask only

  EXPECT_TRUE(at::equal(ex.run({in})[0], in)) << "eval mode must be the identity";

  ex.set_training(true);
  at::manual_seed(7);
  at::Tensor got = ex.run({in})[0];
  at::manual_seed(7);
  at::Tensor want = at::dropout(in, 0.5, /*train=*/true);
  EXPECT_TRUE(at::equal(got, want)) << "same seed, same mask as ATen's dropout";
  at::Tensor kept = got != 0;
  double kept_fraction = kept.to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(kept_fraction, 0.5, 0.03);
  EXPECT_TRUE(all_close(got.masked_select(kept), (in * 2.0).masked_select(kept)))
      << "kept elements are scaled by 1 / (1 - ratio)";
}

TEST(Executor, DropoutMaskOutputMatchesScaledOutputInTraining) {
  // Two outputs, which GraphBuilder does not make: rename the builder's single output.
  test::GraphBuilder b(13);
  auto x = b.input("x", {64, 64});
  b.node("Dropout", {x, b.init("ratio", at::scalar_tensor(0.25, at::kFloat))}, {}, "drop");
  Graph g = b.build();
  g.nodes[0].outputs = {"y", "mask"};
  g.outputs.resize(2);
  g.outputs[0].name = "y";
  g.outputs[1].name = "mask";
  g.outputs[1].dtype = at::kBool;
  g.trainable.erase("ratio");
  g.verify();
  Executor ex(g);
  at::manual_seed(0);
  at::Tensor in = at::rand({64, 64}) + 1.0;

  auto eval = ex.run({in});
  EXPECT_TRUE(at::equal(eval[0], in));
  EXPECT_TRUE(eval[1].all().item<bool>()) << "eval mask keeps everything";

  ex.set_training(true);
  auto train = ex.run({in});
  ASSERT_EQ(train[1].scalar_type(), at::kBool);
  EXPECT_TRUE(all_close(train[0], in * train[1].to(at::kFloat) / 0.75));
  EXPECT_NEAR(train[1].to(at::kDouble).mean().item<double>(), 0.75, 0.03);
}

TEST(Executor, AutogradReachesEveryTrainableInitializerButNoRunningStatistic) {
  Params p = make_params();
  Graph g = make_net(p);
  EXPECT_EQ(g.trainable,
            (std::set<std::string>{"bn_bias", "bn_scale", "conv_b", "conv_w", "fc_b", "fc_w"}));
  Executor ex(g);
  ex.set_training(true);
  at::Tensor x = at::randn({3, 3, 8, 8});
  at::Tensor loss = ex.run({x})[0].pow(2).mean();
  loss.backward();

  // The same loss in ATen, with leaves of its own.
  Params ref = clone(p);
  for (auto* t : {&ref.conv_w, &ref.conv_b, &ref.bn_scale, &ref.bn_bias, &ref.fc_w, &ref.fc_b})
    t->requires_grad_(true);
  reference_net(x, ref, true).pow(2).mean().backward();
  const std::map<std::string, at::Tensor> ref_grad = {
      {"conv_w", ref.conv_w.grad()},     {"conv_b", ref.conv_b.grad()},
      {"bn_scale", ref.bn_scale.grad()}, {"bn_bias", ref.bn_bias.grad()},
      {"fc_w", ref.fc_w.grad()},         {"fc_b", ref.fc_b.grad()},
  };
  for (const auto& name : g.trainable) {
    const at::Tensor& t = g.initializers.at(name);
    ASSERT_TRUE(t.grad().defined()) << "no gradient reached " << name;
    EXPECT_GT(t.grad().abs().sum().item<double>(), 0.0) << name;
    EXPECT_TRUE(all_close(t.grad(), ref_grad.at(name), 1e-4, 1e-6)) << name;
  }
  for (const char* stat : {"bn_mean", "bn_var"}) {
    EXPECT_FALSE(g.initializers.at(stat).requires_grad()) << stat;
    EXPECT_FALSE(g.initializers.at(stat).grad().defined()) << stat;
  }

  // Leaving training mode stops gradient tracking on every initializer.
  ex.set_training(false);
  for (const auto& [name, t] : g.initializers) EXPECT_FALSE(t.requires_grad()) << name;
  EXPECT_FALSE(ex.run({x})[0].requires_grad());
}

TEST(Executor, DynamicBatchRunsAtAnySize) {
  Params p = make_params();
  Graph g = make_net(p);
  Executor ex(g);
  at::Tensor x5 = at::randn({5, 3, 8, 8});
  at::Tensor x1 = x5.slice(0, 2, 3).clone();
  at::Tensor y1 = ex.run({x1})[0];
  at::Tensor y5 = ex.run({x5})[0];
  EXPECT_EQ(y1.sizes().vec(), (std::vector<int64_t>{1, 5}));
  EXPECT_EQ(y5.sizes().vec(), (std::vector<int64_t>{5, 5}));
  Params ref = clone(p);
  EXPECT_TRUE(all_close(y5, reference_net(x5, ref, false)));
  EXPECT_TRUE(all_close(y1, y5.slice(0, 2, 3))) << "rows do not depend on the batch size";
}

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << part << "' not in message: " << text;
}

using test::error_of;

TEST(Executor, InputChecksNameTheInputAndShapes) {
  Params p = make_params();
  Graph g = make_net(p);
  Executor ex(g);
  std::string rank = error_of([&] { ex.run({at::randn({3, 8, 8})}); });
  EXPECT_TRUE(contains(rank, "'image'"));
  EXPECT_TRUE(contains(rank, "Nx3x8x8"));
  EXPECT_TRUE(contains(rank, "3x8x8"));
  EXPECT_TRUE(contains(rank, "rank 4"));

  std::string dim = error_of([&] { ex.run({at::randn({2, 4, 8, 8})}); });
  EXPECT_TRUE(contains(dim, "'image'"));
  EXPECT_TRUE(contains(dim, "Nx3x8x8"));
  EXPECT_TRUE(contains(dim, "2x4x8x8"));

  std::string dtype = error_of([&] { ex.run({at::randn({2, 3, 8, 8}, at::kDouble)}); });
  EXPECT_TRUE(contains(dtype, "'image'"));
  EXPECT_TRUE(contains(dtype, "float32"));
  EXPECT_TRUE(contains(dtype, "float64"));

  std::string none = error_of([&] { ex.run({}); });
  EXPECT_TRUE(contains(none, "'image'"));
  EXPECT_TRUE(contains(none, "Nx3x8x8"));
  EXPECT_TRUE(contains(none, "got 0"));
  std::string two = error_of([&] { ex.run({at::randn({2, 3, 8, 8}), at::randn({2, 3, 8, 8})}); });
  EXPECT_TRUE(contains(two, "'image'"));
  EXPECT_TRUE(contains(two, "got 2"));

  std::string named = error_of([&] { ex.run_named({{"img", at::randn({2, 3, 8, 8})}}); });
  EXPECT_TRUE(contains(named, "'image'"));
  std::string named_shape = error_of([&] { ex.run_named({{"image", at::randn({2, 3, 7, 8})}}); });
  EXPECT_TRUE(contains(named_shape, "'image'"));
  EXPECT_TRUE(contains(named_shape, "2x3x7x8"));

  // With checks off the kernels see the tensor, and their failure names the node.
  ex.set_check_inputs(false);
  std::string kernel = error_of([&] { ex.run({at::randn({2, 4, 8, 8})}); });
  EXPECT_TRUE(contains(kernel, "conv"));
}

TEST(Executor, BadAttributesOfTheWiderOpSetNameNodeAndValue) {
  // One node on x [1, 4, 6, 6]; the error must name the node and the value it got.
  auto run_one = [](const std::string& op, std::map<std::string, AttrValue> attrs,
                    std::vector<at::Tensor> extra) {
    test::GraphBuilder b;
    auto x = b.input("x", {1, 4, 6, 6});
    std::vector<std::string> in{x};
    for (size_t k = 0; k < extra.size(); ++k)
      in.push_back(extra[k].defined() ? b.init("p" + std::to_string(k), extra[k]) : "");
    b.output(b.node(op, in, std::move(attrs), "n1"));
    Graph g = b.build();
    return error_of([&] {
      Executor ex(g);
      ex.run({at::randn({1, 4, 6, 6})});
    });
  };
  std::string mode = run_one("Resize", {{"mode", std::string("area")}},
                             {at::Tensor(), at::tensor({1.f, 1.f, 2.f, 2.f})});
  EXPECT_TRUE(contains(mode, "'n1'")) << mode;
  EXPECT_TRUE(contains(mode, "mode 'area'")) << mode;
  std::string both = run_one(
      "Resize", {},
      {at::Tensor(), at::tensor({1.f, 1.f, 2.f, 2.f}), at::tensor({1, 4, 12, 12}, at::kLong)});
  EXPECT_TRUE(contains(both, "exactly one of scales and sizes")) << both;
  std::string block = run_one("DepthToSpace", {{"blocksize", int64_t{3}}}, {});
  EXPECT_TRUE(contains(block, "'n1'")) << block;
  EXPECT_TRUE(contains(block, "1x4x6x6")) << block;
  std::string k = run_one("TopK", {}, {at::tensor({7}, at::kLong)});
  EXPECT_TRUE(contains(k, "K = 7")) << k;
  std::string lrn = run_one("LRN", {}, {});
  EXPECT_TRUE(contains(lrn, "'size' is required")) << lrn;
  std::string out = run_one("ConvTranspose", {{"pads", std::vector<int64_t>{4, 4, 4, 4}}},
                            {at::randn({4, 2, 3, 3})});
  EXPECT_TRUE(contains(out, "output dim 0 would be 0")) << out;
}

TEST(Executor, ResizeFastPathsMatchTheGenericInterpolation) {
  // 4-D inputs in PyTorch's forms run on ATen's upsampling kernels; the same data as 5-D (an
  // extra unit axis) takes the generic per-axis path. Both must agree.
  struct Case {
    std::string mode, coord, nearest;
    std::vector<float> scales;  // H, W; empty: sizes
    std::vector<int64_t> sizes;
  };
  const std::vector<Case> cases = {
      {"linear", "half_pixel", "", {2.f, 2.f}, {}},
      {"linear", "half_pixel", "", {}, {13, 7}},
      {"linear", "half_pixel", "", {0.5f, 1.5f}, {}},
      {"linear", "pytorch_half_pixel", "", {}, {9, 12}},
      {"linear", "align_corners", "", {}, {11, 4}},
      {"linear", "align_corners", "", {2.f, 3.f}, {}},
      {"nearest", "asymmetric", "floor", {2.f, 4.f}, {}},
  };
  at::manual_seed(4);
  at::Tensor x4 = at::randn({2, 3, 5, 6});
  for (const auto& k : cases) {
    SCOPED_TRACE(k.mode + " " + k.coord);
    auto run_rank = [&](int rank) {
      test::GraphBuilder b;
      std::vector<int64_t> shape = {2, 3, 5, 6};
      if (rank == 5) shape.insert(shape.begin() + 2, 1);
      auto x = b.input("x", shape);
      std::vector<std::string> in{x, ""};
      if (!k.scales.empty()) {
        std::vector<float> sc(rank - 2, 1.f);
        sc.insert(sc.end(), k.scales.begin(), k.scales.end());
        in.push_back(b.init("scales", at::tensor(sc)));
      } else {
        std::vector<int64_t> sz(shape.begin(), shape.end() - 2);
        sz.insert(sz.end(), k.sizes.begin(), k.sizes.end());
        in.push_back("");
        in.push_back(b.init("sizes", at::tensor(sz, at::kLong)));
      }
      std::map<std::string, AttrValue> attrs = {{"mode", k.mode},
                                                {"coordinate_transformation_mode", k.coord}};
      if (!k.nearest.empty()) attrs["nearest_mode"] = k.nearest;
      b.output(b.node("Resize", in, attrs, "resize"));
      Graph g = b.build();
      Executor ex(g);
      at::Tensor xin = rank == 5 ? x4.unsqueeze(2) : x4;
      at::Tensor y = ex.run({xin})[0];
      return rank == 5 ? y.squeeze(2) : y;
    };
    at::Tensor fast = run_rank(4), generic = run_rank(5);
    ASSERT_EQ(fast.sizes(), generic.sizes());
    EXPECT_LT((fast - generic).abs().max().item<double>(), 1e-5);
  }
}

TEST(Executor, ResizeNearestAtAScaleOfThreeMatchesAPlainLoop) {
  // Not a power of two, so no ATen fast path: the generic per-axis path against the definition,
  // asymmetric coordinates with floor: out[n][c][y][x] = in[n][c][floor(y / 3)][floor(x / 2)].
  test::GraphBuilder b;
  auto x = b.input("x", {2, 3, 5, 6});
  b.output(b.node("Resize", {x, "", b.init("scales", at::tensor({1.f, 1.f, 3.f, 2.f}))},
                  {{"mode", std::string("nearest")},
                   {"coordinate_transformation_mode", std::string("asymmetric")},
                   {"nearest_mode", std::string("floor")}},
                  "resize"));
  Graph g = b.build();
  at::manual_seed(4);
  const at::Tensor in = at::randn({2, 3, 5, 6});
  const at::Tensor y = Executor(g).run({in})[0];
  ASSERT_EQ(y.sizes(), at::IntArrayRef({2, 3, 15, 12}));
  auto ia = in.accessor<float, 4>();
  auto ya = y.accessor<float, 4>();
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t h = 0; h < 15; ++h)
        for (int64_t w = 0; w < 12; ++w)
          ASSERT_EQ(ya[n][c][h][w], ia[n][c][h / 3][w / 2]) << n << "," << c << "," << h << "," << w;
}

TEST(Executor, SpatialMeansEqualTheMeanInDoubleInEitherLayout) {
  // GlobalAveragePool and ReduceMean over H and W (keepdims 1 and 0) in inference, on NCHW input
  // and on NHWC input (a oneDNN conv's output): the mean taken in double, rounded once to float.
  for (bool nhwc : {false, true}) {
    SCOPED_TRACE(nhwc ? "NHWC" : "NCHW");
    test::GraphBuilder b;
    auto x = b.input("x", {kDynamicDim, 6, 7, 5});
    at::manual_seed(8);
    auto v = nhwc ? b.node("Conv", {x, b.init("w", at::randn({11, 6, 1, 1}))}, {}, "conv") : x;
    b.output(b.node("GlobalAveragePool", {v}, {}, "gap"));
    b.output(b.node("ReduceMean", {v}, {{"axes", std::vector<int64_t>{-1, 2}}}, "keep"));
    b.output(b.node("ReduceMean", {v},
                    {{"axes", std::vector<int64_t>{2, 3}}, {"keepdims", int64_t{0}}}, "flat"));
    if (nhwc) b.output(v);
    Graph g = b.build();
    Executor ex(g);
    const at::Tensor in = at::randn({3, 6, 7, 5}) * 10 + 3;
    std::vector<at::Tensor> y = ex.run({in});
    const at::Tensor base = nhwc ? y[3] : in;
    const at::Tensor want = base.to(at::kDouble).mean({2, 3}, true).to(at::kFloat);
    EXPECT_TRUE(at::equal(y[0], want));
    EXPECT_TRUE(at::equal(y[1].contiguous(), want));
    EXPECT_TRUE(at::equal(y[2], want.flatten(1)));
  }
}

TEST(Executor, RunNamedFetchesIntermediates) {
  Params p = make_params();
  Graph g = make_net(p);
  Executor ex(g);
  at::Tensor x = at::randn({2, 3, 8, 8});
  // conv_out's last reader is bn, so the executor would free it; fetching must keep it.
  auto got = ex.run_named({{"image", x}}, {"conv_out", "relu_out", "fc_out"});
  ASSERT_EQ(got.size(), 3u);
  Params ref = clone(p);
  at::Tensor conv;
  at::Tensor want = reference_net(x, ref, false, 0.9f, &conv);
  EXPECT_TRUE(all_close(got.at("conv_out"), conv));
  EXPECT_EQ(got.at("relu_out").sizes().vec(), (std::vector<int64_t>{2, 4, 8, 8}));
  EXPECT_GE(got.at("relu_out").min().item<float>(), 0.0f);
  EXPECT_TRUE(all_close(got.at("fc_out"), want));

  auto outputs = ex.run_named({{"image", x}});
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_TRUE(all_close(outputs.at("fc_out"), want));

  std::string missing = error_of([&] { ex.run_named({{"image", x}}, {"no_such_value"}); });
  EXPECT_TRUE(contains(missing, "no_such_value"));
}

}  // namespace
}  // namespace slim
