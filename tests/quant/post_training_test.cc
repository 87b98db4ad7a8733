// Post-training quantization of a MobileNetV1 trained on MNIST: every calibration algorithm keeps
// accuracy, and Slim's int8 execution agrees with ONNX Runtime on the QDQ file.
#include <gtest/gtest.h>

#include "trained_models.h"
#include "slim/data/npy.h"
#include "slim/exec/executor.h"
#include "slim/quant/post_training.h"

namespace slim {
namespace {

EvalResult eval_subset(Graph& g, int64_t n) {
  EvalOptions eo;
  eo.max_samples = n;
  eo.threads = 2;
  eo.progress = false;
  return evaluate(g, open_dataset("mnist:" + test::data_dir("mnist"), Split::kTest), eo);
}

PtqOptions ptq_options(CalibAlgo algo) {
  PtqOptions o;
  o.calib.algo = algo;
  o.calib.batches = 8;
  o.calib.progress = false;
  o.calib.threads = 2;
  return o;
}

TEST(PostTraining, EveryAlgorithmKeepsTop1OnMnist) {
  Graph f = test::trained_mnist_mobilenet_v1();
  auto train = open_dataset("mnist:" + test::data_dir("mnist"), Split::kTrain);
  const double base = eval_subset(f, 2000).top1;
  ASSERT_GT(base, 0.85);
  for (CalibAlgo algo :
       {CalibAlgo::kHist, CalibAlgo::kKl, CalibAlgo::kMse, CalibAlgo::kAvg, CalibAlgo::kAbsMax}) {
    Graph g = f.clone();
    PtqOptions o = ptq_options(algo);
    ScaleTable t = ptq_calibrate(g, train, o);
    EXPECT_EQ(t.samples, 128);
    QdqReport r = ptq_apply(g, t, o);
    EXPECT_EQ(r.nodes, 28);
    const double q = eval_subset(g, 2000).top1;
    // 2000 images: one point is 20 images. The full test set is in bench/bench_quant.py. Over
    // seeds 0-4 under three kernel settings (trained_models.h) int8 minus float was -0.0055 to
    // +0.0025 (hist), -0.0030 to +0.0035 (kl), -0.0075 to +0.0025 (mse), -0.0050 to +0.0030
    // (avg), -0.0085 to +0.0030 (abs_max).
    EXPECT_GE(q, base - 0.015) << to_string(algo) << ": float " << base << " int8 " << q;
    std::printf("[   info   ] %s: float %.4f int8 %.4f\n", to_string(algo).c_str(), base, q);
  }
}

TEST(PostTraining, TwoStepsThroughASavedTableGiveTheSameModel) {
  Graph f = test::trained_mnist_mobilenet_v1();
  const std::string dir = test::temp_dir("ptq_table");
  PtqOptions o = ptq_options(CalibAlgo::kKl);
  Graph a = f.clone();
  ScaleTable t = ptq_calibrate(a, open_dataset("mnist:" + test::data_dir("mnist"), Split::kTrain), o);
  scale_table_save(t, dir + "/t.json");
  ScaleTable back = scale_table_load(dir + "/t.json");
  ASSERT_EQ(back.activations.size(), t.activations.size());
  for (const auto& [name, s] : t.activations) {
    EXPECT_DOUBLE_EQ(back.activations.at(name).threshold, s.threshold) << name;
    EXPECT_EQ(back.activations.at(name).is_unsigned, s.is_unsigned) << name;
  }
  EXPECT_EQ(back.algo, "kl");
  Graph b = f.clone();
  ptq_apply(a, t, o);
  ptq_apply(b, back, o);
  EXPECT_EQ(onnx_serialize(a), onnx_serialize(b));
}

TEST(PostTraining, SlimAndOnnxRuntimeAgreeOnEveryMnistTestImage) {
  Graph g = test::trained_mnist_mobilenet_v1();
  PtqOptions o = ptq_options(CalibAlgo::kHist);
  ptq_apply(g, ptq_calibrate(g, open_dataset("mnist:" + test::data_dir("mnist"), Split::kTrain), o),
            o);
  const std::string dir = test::temp_dir("ptq_ort");
  onnx_save(g, dir + "/q.onnx");
  auto test_set = open_dataset("mnist:" + test::data_dir("mnist"), Split::kTest);
  std::vector<int64_t> idx(test_set->size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
  at::Tensor x = test_set->gather(idx).first;
  at::Tensor ort = test::ort_run(dir + "/q.onnx", x, dir);
  ASSERT_TRUE(ort.defined());
  Executor ex(g);
  std::vector<at::Tensor> parts;
  for (int64_t s = 0; s < x.size(0); s += 500) parts.push_back(ex.run({x.slice(0, s, s + 500)})[0]);
  at::Tensor slim = at::cat(parts);
  ASSERT_EQ(slim.sizes(), ort.sizes());
  const double agree = slim.argmax(1).eq(ort.argmax(1)).to(at::kDouble).mean().item<double>();
  EXPECT_GE(agree, 0.995);
  std::printf("top-1 predictions identical on %.2f%% of %lld images\n", 100 * agree,
              static_cast<long long>(x.size(0)));
}

}  // namespace
}  // namespace slim
