// Calibration thresholds: hist and kl on written-out histograms (kl also against an independent
// Python implementation), and calibrate() on MNIST through a zoo MobileNetV1.
#include "slim/quant/calibrate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "slim/data/dataset.h"
#include "slim/exec/executor.h"
#include "slim/passes/fold_batch_norm.h"
#include "slim/quant/fake_quant.h"
#include "test_util.h"

namespace slim {
namespace {

TEST(Calibrate, HistTakesTheFirstBinReachingThePercentile) {
  // 10 bins of width 0.5: 90% of the mass in bins 0-2, the rest at bin 9.
  std::vector<double> h{30, 30, 30, 0, 0, 0, 0, 0, 0, 10};
  EXPECT_DOUBLE_EQ(threshold_hist(h, 0.5, 0.9), 2.5 * 0.5);
  EXPECT_DOUBLE_EQ(threshold_hist(h, 0.5, 0.95), 9.5 * 0.5);
  EXPECT_DOUBLE_EQ(threshold_hist(h, 0.5, 0.3), 0.5 * 0.5);
  EXPECT_NE(test::error_of([&] { threshold_hist(h, 0.5, 1.5); }).find("hist_percent"),
            std::string::npos);
}

double python_kl(const std::vector<double>& h, double abs_max, int levels) {
  std::ostringstream cmd;
  cmd.precision(17);
  cmd << "/usr/bin/python3 " << test::source_dir() << "/tests/fixtures/kl_reference.py " << levels
      << " " << abs_max;
  for (double v : h) cmd << " " << v;
  auto r = test::run_cmd(cmd.str());
  EXPECT_EQ(r.code, 0) << r.err;
  return std::stod(r.out);
}

/// The kl histogram of |x|: the upper half of kKlBins bins over [-max, max].
std::vector<double> kl_hist(const at::Tensor& ax, double mx) {
  at::Tensor h = at::histc(ax, kKlBins, -mx, mx);
  const float* d = h.data_ptr<float>();
  return std::vector<double>(d + kKlBins / 2, d + kKlBins);
}

TEST(Calibrate, KlAgreesWithAnIndependentReferenceOnRealisticHistograms) {
  at::manual_seed(3);
  for (int trial = 0; trial < 2; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    // |x| after a ReLU: half exact zeros, a bulk near 0 and a few outliers.
    at::Tensor x = at::cat(
        {at::zeros({20000}), at::randn({20000}).abs(), at::randn({40}).abs() * (4 + 4 * trial)});
    const double mx = x.max().item<double>();
    std::vector<double> hist = kl_hist(x, mx);
    const double width = 2 * mx / kKlBins;
    const double got = threshold_kl(hist, mx, 255);
    EXPECT_NEAR(got, python_kl(hist, mx, 255), 1e-3 * width);
    // On the bin grid; the outliers are cut, the bulk is kept.
    const double bins = got / width - 0.5;
    EXPECT_NEAR(bins, std::round(bins), 1e-6);
    EXPECT_LT(got, 0.8 * mx);
    EXPECT_GT(got, 2.5);
  }
}

TEST(Calibrate, KlAgreesWithTheReferenceOnASpikyHistogram) {
  // The shape of the first ReLU map of a net on MNIST: most counts exactly 0, channels that sit
  // at one value on the background (spikes of 50,000 counts each) and the strokes, a thin tail up
  // to the max.
  at::manual_seed(4);
  std::vector<at::Tensor> parts = {at::zeros({400000})};
  for (float v : {0.3f, 0.9f, 1.4f, 2.6f}) parts.push_back(at::full({50000}, v));
  parts.push_back(at::rand({60000}).pow(2) * 5.2);
  at::Tensor x = at::cat(parts);
  const double mx = x.max().item<double>();
  std::vector<double> hist = kl_hist(x, mx);
  const double got = threshold_kl(hist, mx, 255);
  EXPECT_NEAR(got, python_kl(hist, mx, 255), 1e-3 * 2 * mx / kKlBins);
  EXPECT_GT(got, 2.6);  // above the last spike
  // Too few bins for the levels is a clear error.
  std::string e = test::error_of([&] { threshold_kl(std::vector<double>(100, 1.0), 1.0, 255); });
  EXPECT_NE(e.find("kl calibration needs at least 128 histogram bins for 255 levels, got 100"),
            std::string::npos)
      << e;
}

TEST(Calibrate, KlClipBoundIsTheFirstUpperEdgeClippingNoMoreThanTheShare) {
  // 5 bins of width w = 2 * 4.5 / 9 = 1: bin k holds |x| in [k - 0.5, k + 0.5).
  const std::vector<double> h{600, 300, 90, 9, 1};  // 1000 counts
  EXPECT_DOUBLE_EQ(threshold_kl_clip_bound(h, 4.5, 0.1), 1.5);    // 100 above bin 1's edge
  EXPECT_DOUBLE_EQ(threshold_kl_clip_bound(h, 4.5, 0.0099), 3.5);  // 1 above bin 3's edge
  EXPECT_DOUBLE_EQ(threshold_kl_clip_bound(h, 4.5, 0.001), 3.5);   // the one count above
  EXPECT_DOUBLE_EQ(threshold_kl_clip_bound(h, 4.5, 0.0009), 4.5);  // nothing clipped: the max
  EXPECT_NE(test::error_of([&] { threshold_kl_clip_bound(h, 4.5, 0); }).find("kl_max_clip"),
            std::string::npos);
}

/// Images cut from one tensor of values, for calibrating a graph on chosen data.
class ValueImages : public Dataset {
 public:
  explicit ValueImages(at::Tensor images) : images_(std::move(images)) {}
  int64_t size() const override { return images_.size(0); }
  at::Tensor image(int64_t i) const override { return images_[i]; }
  int64_t label(int64_t) const override { return 0; }
  int64_t num_classes() const override { return 1; }
  std::vector<int64_t> image_shape() const override {
    return {images_.size(1), images_.size(2), images_.size(3)};
  }
  std::string describe() const override { return "values"; }

 private:
  at::Tensor images_;
};

// calibrate() with kl on the spiky activation above, as the input of a 1x1 conv: MXNet's cut
// lies in the tail above the spikes, clipping 2% of the values; the guard raises it to the edge
// that clips at most kl_max_clip (default 0.03%); kl_max_clip 1 leaves MXNet's cut.
TEST(Calibrate, KlGuardClipsAtMostTheShareItIsGiven) {
  at::manual_seed(4);
  std::vector<at::Tensor> parts = {at::zeros({400000})};
  for (float v : {0.3f, 0.9f, 1.4f, 2.6f}) parts.push_back(at::full({50000}, v));
  parts.push_back(at::rand({60000}).pow(2) * 5.2);
  const at::Tensor x = at::cat(parts);
  test::GraphBuilder b;
  auto in = b.input("x", {kDynamicDim, 1, 25, 40});
  b.output(b.node("Conv", {in, b.init("w", at::ones({1, 1, 1, 1}))}, {}, "conv"));
  Graph g = b.build();
  auto data = std::make_shared<ValueImages>(x.reshape({-1, 1, 25, 40}));  // 660 images
  CalibOptions o;
  o.algo = CalibAlgo::kKl;
  o.batch_size = 66;
  o.progress = false;
  o.kl_max_clip = 1;
  const double mxnet = calibrate(g, data, {}, o).activations.at("x").threshold;
  o.kl_max_clip = CalibOptions{}.kl_max_clip;
  const double guarded = calibrate(g, data, {}, o).activations.at("x").threshold;
  const double mx = x.max().item<double>();
  const std::vector<double> hist = kl_hist(x, mx);
  EXPECT_NEAR(mxnet, threshold_kl(hist, mx, 255), 1e-6);
  const double clipped = x.gt(guarded).sum().item<double>() / x.numel();
  EXPECT_LE(clipped, o.kl_max_clip);
  EXPECT_GT(x.gt(mxnet).sum().item<double>() / x.numel(), o.kl_max_clip) << "the guard had nothing to do";
  EXPECT_GT(guarded, mxnet);
  // The smallest bin edge that clips no more: one bin lower clips more.
  EXPECT_GT(x.gt(guarded - 2 * mx / kKlBins).sum().item<double>() / x.numel(), o.kl_max_clip);
  std::printf("[   info   ] MXNet's kl %.3f clips %.3f%%; guarded %.3f clips %.3f%%\n", mxnet,
              100 * x.gt(mxnet).sum().item<double>() / x.numel(), guarded, 100 * clipped);
}

class CalibrateMnist : public ::testing::Test {
 protected:
  void SetUp() override {
    g_ = test::mnist_mobilenet_v1();
    test::randomize_batch_norm(g_, 5);
    fold_batch_norm(g_);
    data_ = open_dataset("mnist:" + test::data_dir("mnist"), Split::kTrain);
    o_.batches = 3;
    o_.batch_size = 16;
    o_.progress = false;
    o_.threads = 2;
  }
  /// Every calibrated value over the same 48 images, computed directly.
  at::Tensor values(const std::string& name) {
    Executor ex(g_);
    DataLoader dl(data_, {.batch_size = 48, .shuffle = false});
    Batch b;
    dl.next(b);
    return ex.run_named({{"image", b.images}}, {name}).at(name);
  }
  Graph g_;
  std::shared_ptr<Dataset> data_;
  CalibOptions o_;
  QuantOptions q_;
};

TEST_F(CalibrateMnist, AbsMaxAndAvgMatchTheirDefinitions) {
  o_.algo = CalibAlgo::kAbsMax;
  ScaleTable t = calibrate(g_, data_, q_, o_);
  EXPECT_EQ(t.samples, 48);
  EXPECT_EQ(t.batches, 3);
  // The inputs of all 27 convs (conv1, 13 depthwise, 13 pointwise) and of the fc, and the output
  // of the last conv's step (conv6_sep_relu), read by the global pool.
  EXPECT_EQ(t.activations.size(), 29u);
  ASSERT_TRUE(t.activations.count("conv6_sep_relu"));
  EXPECT_EQ(t.activations.at("conv6_sep_relu").consumers, std::vector<std::string>{"pool"});
  ASSERT_TRUE(t.activations.count("image"));
  ASSERT_TRUE(t.activations.count("conv3_1_sep_relu"));
  EXPECT_FALSE(t.activations.at("image").is_unsigned);
  EXPECT_TRUE(t.activations.at("conv3_1_sep_relu").is_unsigned);
  EXPECT_EQ(t.activations.at("conv3_1_sep_relu").consumers, std::vector<std::string>{"conv3_2_dw"});
  at::Tensor v = values("conv3_1_sep_relu");
  EXPECT_NEAR(t.activations.at("conv3_1_sep_relu").threshold, v.abs().max().item<double>(), 1e-6);
  EXPECT_NEAR(t.activations.at("image").threshold, 1.0, 1e-6);  // pixels scaled to [-1, 1]

  o_.algo = CalibAlgo::kAvg;
  ScaleTable a = calibrate(g_, data_, q_, o_);
  double sum = 0;
  for (int k = 0; k < 3; ++k)
    sum += v.slice(0, 16 * k, 16 * (k + 1)).abs().reshape({16, -1}).amax(1).mean().item<double>();
  EXPECT_NEAR(a.activations.at("conv3_1_sep_relu").threshold, sum / 3, 1e-5);
}

// hist and kl on real activations against computations that share nothing with calibrate():
// hist from the sorted |x| of all 48 images (the bin holding the ceil(0.9999 n)-th smallest, at
// its centre), kl from one histogram of all 48 images fed to the Python reference. Three
// activations: the input (signed), a depthwise output that is mostly spikes (where kl cuts far
// below the max) and a pointwise one.
TEST_F(CalibrateMnist, HistAndKlMatchIndependentComputations) {
  const std::vector<std::string> names = {"image", "conv2_2_dw_relu", "conv4_1_sep_relu"};
  o_.algo = CalibAlgo::kHist;
  const ScaleTable hist = calibrate(g_, data_, q_, o_);
  o_.algo = CalibAlgo::kKl;
  o_.kl_max_clip = 1;  // MXNet's calibration as the reference computes it
  const ScaleTable kl = calibrate(g_, data_, q_, o_);
  const double max_clip = CalibOptions{}.kl_max_clip;  // the default guard
  o_.kl_max_clip = max_clip;
  const ScaleTable guarded = calibrate(g_, data_, q_, o_);
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    const at::Tensor ax = values(name).abs().flatten().to(at::kDouble).contiguous();
    const double mx = ax.max().item<double>();
    ASSERT_GT(mx, 0);
    EXPECT_DOUBLE_EQ(hist.activations.at(name).abs_max, mx);

    std::vector<double> v(ax.data_ptr<double>(), ax.data_ptr<double>() + ax.numel());
    std::sort(v.begin(), v.end());
    const auto k = static_cast<size_t>(std::ceil(0.9999 * static_cast<double>(v.size())));
    const double width = mx / 2048, pos = v[k - 1] / width;
    const double bin = std::min(std::floor(pos), 2047.0);
    const double want = (bin + 0.5) * width;
    const double got = hist.activations.at(name).threshold;
    // A value within float rounding of a bin edge may be counted in the neighbouring bin.
    const double edge = std::abs(pos - std::round(pos));
    EXPECT_NEAR(got, want, edge < 1e-3 ? 1.001 * width : 1e-6 * width)
        << "hist: rank " << k << " of " << v.size();

    const double kl_want = python_kl(kl_hist(ax.to(at::kFloat), mx), mx, 255);
    const double kw = 2 * mx / kKlBins;
    EXPECT_NEAR(kl.activations.at(name).threshold, kl_want, 1e-3 * kw);
    // The guard: the upper edge of the kl bin (centred on k * kw) holding the largest value kept
    // when at most max_clip of the values are clipped.
    const double kept =
        v[v.size() - 1 - static_cast<size_t>(max_clip * static_cast<double>(v.size()))];
    const double kpos = kept / kw + 0.5;
    const double bound = std::min(mx, (std::floor(kpos) + 0.5) * kw);
    const double kedge = std::abs(kpos - std::round(kpos));
    const double guard_want = std::max(kl_want, bound);
    EXPECT_NEAR(guarded.activations.at(name).threshold, guard_want,
                kedge < 1e-3 && guard_want == bound ? 1.001 * kw : 1e-3 * kw);
    std::printf("[   info   ] %s: max %.4f, hist %.4f, kl %.4f, kl guarded %.4f\n", name.c_str(),
                mx, got, kl.activations.at(name).threshold, guarded.activations.at(name).threshold);
  }
}

TEST_F(CalibrateMnist, MseMinimisesTheQuantizationError) {
  o_.algo = CalibAlgo::kMse;
  ScaleTable t = calibrate(g_, data_, q_, o_);
  const auto& a = t.activations.at("conv4_1_sep_relu");
  at::Tensor v = values("conv4_1_sep_relu");
  auto err = [&](double s) {
    return (v - quant_dequant(v, at::scalar_tensor(s, at::kFloat), 8, -1, true))
        .pow(2)
        .mean()
        .item<double>();
  };
  const double best = err(a.threshold);
  for (int k = 0; k < 36; ++k) EXPECT_LE(best, err((0.30 + 0.02 * k) * a.abs_max) * (1 + 1e-6));
  // The multiplier is on the 0.02 grid.
  const double m = a.threshold / a.abs_max;
  EXPECT_NEAR(std::round((m - 0.30) / 0.02), (m - 0.30) / 0.02, 1e-6);
}

TEST_F(CalibrateMnist, NothingToQuantizeIsAClearError) {
  QuantOptions q;
  q.not_quant_pattern = ".";
  EXPECT_NE(test::error_of([&] { calibrate(g_, data_, q, o_); }).find("nothing to quantize"),
            std::string::npos);
}

}  // namespace
}  // namespace slim
