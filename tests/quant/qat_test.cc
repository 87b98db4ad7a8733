// Quant-aware training: fake-quant insertion and removal, and one short fine-tune of a MobileNetV1
// trained on MNIST that exports a QDQ model keeping its accuracy.
#include <gtest/gtest.h>

#include "trained_models.h"
#include "slim/exec/executor.h"
#include "slim/passes/fold_batch_norm.h"
#include "slim/quant/insert_fake_quant.h"
#include "slim/quant/qat.h"

namespace slim {
namespace {

TEST(InsertFakeQuant, WrapsEveryTargetAndRemovesCleanly) {
  Graph g = test::mnist_mobilenet_v1();
  fold_batch_norm(g);
  Graph before = g.clone();
  QuantOptions o;
  o.act_algo = ActQuantAlgo::kRangeAbsMax;
  o.window_size = 5;
  EXPECT_EQ(insert_fake_quant(g, o), 28);
  // 28 weights, the 28 ops' inputs and conv6_sep_relu (the last conv's step output, read by the
  // pool), each read through its FakeQuant by every reader.
  EXPECT_EQ(g.op_histogram()["FakeQuant"], 57);
  const Node* out_fq = g.find_node("conv6_sep_relu_fake_quant");
  ASSERT_NE(out_fq, nullptr);
  EXPECT_EQ(g.find_node("pool")->input(0), out_fq->outputs[0]);
  const Node* fq = g.find_node("conv2_1_dw_relu_fake_quant");
  ASSERT_NE(fq, nullptr);
  EXPECT_EQ(fq->i("unsigned", 0), 1);
  EXPECT_EQ(g.initializers.at(fq->inputs[1]).numel(), 2 + 5);
  EXPECT_EQ(g.find_node("image_fake_quant")->i("unsigned", 1), 0);
  EXPECT_EQ(remove_fake_quant(g), 57);
  EXPECT_EQ(onnx_serialize(g), onnx_serialize(before));
  // Bad input.
  Graph q = before.clone();
  insert_fake_quant(q, {});
  EXPECT_NE(test::error_of([&] { insert_fake_quant(q, {}); }).find("already quantized"),
            std::string::npos);
  QuantOptions bad;
  bad.weight_bits = 20;
  Graph h = before.clone();
  EXPECT_NE(test::error_of([&] { insert_fake_quant(h, bad); }).find("got 20"), std::string::npos);
}

TEST(QuantAwareTraining, OneShortFineTuneKeepsTop1AndExportsQdq) {
  Graph g = test::trained_mnist_mobilenet_v1();
  auto test_set = open_dataset("mnist:" + test::data_dir("mnist"), Split::kTest);
  EvalOptions eo;
  eo.max_samples = 2000;
  eo.threads = 2;
  eo.progress = false;
  const double base = evaluate(g, test_set, eo).top1;
  QatOptions o;
  o.train.epochs = 1;
  o.train.batch_size = 64;
  // A trained model sits where its cosine schedule left it; a constant lr of 0.001 from the first
  // step moved seed 0's model by -2.85 points in 32 steps, the same peak decayed on a cosine by
  // -0.4 (seed 1: -0.6).
  o.train.lr = 0.001;
  o.train.schedule = LrSchedule::kCosine;
  o.train.seed = test::test_seed();
  o.train.max_samples = 2048;
  o.train.threads = 2;
  o.train.progress = false;
  QatReport r = quant_aware_train(g, open_dataset("mnist:" + test::data_dir("mnist"), Split::kTrain), o);
  EXPECT_EQ(r.epochs.size(), 1u);
  EXPECT_EQ(r.table.algo, "qat");
  EXPECT_EQ(r.table.activations.size(), 29u);  // 28 op inputs and conv6_sep_relu
  for (const auto& [name, a] : r.table.activations) EXPECT_GT(a.threshold, 0) << name;
  EXPECT_EQ(r.qdq.nodes, 28);
  auto h = g.op_histogram();
  EXPECT_EQ(h.count("FakeQuant"), 0u);
  EXPECT_EQ(h["QuantizeLinear"], 29);
  EXPECT_EQ(h.count("BatchNormalization"), 0u);
  const double q = evaluate(g, test_set, eo).top1;
  // Over seeds 0-4 under three kernel settings: -0.006 to +0.004.
  EXPECT_GE(q, base - 0.015) << "float " << base << " QAT int8 " << q;
  std::printf("[   info   ] QAT: float %.4f int8 %.4f\n", base, q);
}

}  // namespace
}  // namespace slim
