#pragma once
// A MobileNetV1 trained on 12800 MNIST images, cached in the build tree so the
// quantization tests (each a separate process under CTest) train it once.
#include <filesystem>

#include "slim/onnx/onnx_io.h"
#include "slim/train/trainer.h"
#include "test_util.h"

namespace slim::test {

inline Graph trained_mnist_mobilenet_v1() {
  const std::string path = binary_dir() + "/fixtures/quant_mnist_mobilenet_v1.onnx";
  if (std::filesystem::exists(path)) return onnx_load(path);
  Graph g = mnist_mobilenet_v1();
  TrainOptions o;
  o.epochs = 1;
  o.batch_size = 128;  // the tutorial's batch and learning rate
  o.lr = 0.1;
  o.max_samples = 12800;
  o.threads = 2;
  o.progress = false;
  train(g, open_dataset("mnist:" + data_dir("mnist"), Split::kTrain), o);
  std::filesystem::create_directories(binary_dir() + "/fixtures");
  onnx_save(g, path);  // atomic: a concurrent test process writes the same bytes
  return g;
}

}  // namespace slim::test
