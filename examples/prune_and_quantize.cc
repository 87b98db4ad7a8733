// Slim as a library: train PaddleSlim's MobileNetV1 on part of MNIST, prune half the filters of
// every prunable convolution (L1 norm, kept counts a multiple of 8), fine-tune, quantize to int8
// after training, and save the models. Run from the repository's root (it reads data/mnist).
#include <cstdio>

#include "slim/analysis/flops.h"
#include "slim/data/dataset.h"
#include "slim/onnx/onnx_io.h"
#include "slim/prune/prune_channels.h"
#include "slim/quant/post_training.h"
#include "slim/train/trainer.h"
#include "slim/zoo/zoo.h"

int main() {
  using namespace slim;
  auto train_data = open_dataset("mnist:data/mnist", Split::kTrain);
  auto test_data = open_dataset("mnist:data/mnist", Split::kTest);

  ZooOptions zo;
  zo.input = {1, 28, 28};
  zo.classes = 10;
  Graph g = zoo_build("mobilenet_v1", zo);

  TrainOptions to;
  to.epochs = 1;
  to.max_samples = 6400;
  to.schedule = LrSchedule::kCosine;
  train(g, train_data, to);

  EvalOptions eo;
  eo.max_samples = 2000;
  std::printf("trained: top-1 %.4f, FLOPs %lld\n", evaluate(g, test_data, eo).top1,
              static_cast<long long>(count_flops(g).total));

  PruneOptions po;
  for (const auto& param : prunable_params(g)) po.ratios[param] = 0.5;
  po.align = 8;
  prune_channels(g, po);
  train(g, train_data, to);  // fine-tune
  std::printf("pruned:  top-1 %.4f, FLOPs %lld\n", evaluate(g, test_data, eo).top1,
              static_cast<long long>(count_flops(g).total));
  onnx_save(g, "pruned.onnx");

  PtqOptions qo;
  qo.calib.max_samples = 512;  // calibration needs a few hundred images, not the training set
  const ScaleTable table = ptq_calibrate(g, train_data, qo);
  ptq_apply(g, table, qo);
  std::printf("int8:    top-1 %.4f\n", evaluate(g, test_data, eo).top1);
  onnx_save(g, "pruned_int8.onnx");
}
