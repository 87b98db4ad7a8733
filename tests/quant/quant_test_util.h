#pragma once
// A MobileNetV1 trained on 12800 MNIST images, cached in the build tree so the
// quantization tests (each a separate process under CTest) train it once.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>

#include "slim/onnx/onnx_io.h"
#include "slim/train/trainer.h"
#include "test_util.h"

namespace slim::test {

inline Graph trained_mnist_mobilenet_v1() {
  const std::string path = binary_dir() + "/fixtures/quant_mnist_mobilenet_v1.onnx";
  std::filesystem::create_directories(binary_dir() + "/fixtures");
  // CTest runs tests in parallel processes: the first one trains, the others wait for it.
  struct Lock {
    int fd;
    explicit Lock(const std::string& p) : fd(::open(p.c_str(), O_CREAT | O_RDWR, 0644)) {
      if (fd >= 0) ::flock(fd, LOCK_EX);
    }
    ~Lock() {
      if (fd >= 0) ::close(fd);  // releases the lock
    }
  } lock(path + ".lock");
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
  onnx_save(g, path);
  return g;
}

}  // namespace slim::test
