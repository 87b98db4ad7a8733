// LeNet-5 in the form used for 28x28 MNIST (as in PyTorch's tutorials): conv1 5x5 x6 with
// pad 2, so a 28x28 image gets the 28x28 -> 14 -> 10 -> 5 geometry LeNet-5 has on its original
// 32x32 input (16 * 5 * 5 = 400 features); ReLU (not tanh) and max pooling 2x2/2 (not
// trainable subsampling); fc 120 -> ReLU -> fc 84 -> ReLU -> fc classes. Other sizes work from
// 12x12 up, the fc1 width following the map. Paddle's paddle.vision LeNet differs (3x3 conv1,
// no activations between its fc layers); PaddleSlim has no LeNet of its own.
//
// Weights and biases are initialised like PyTorch's Conv2d/Linear defaults,
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)); fc weights are [in, out] like the rest of the zoo.
#include <cmath>

#include "families.h"

namespace slim::zoo_detail {

namespace {

std::string conv_relu_pool(ZooBuilder& b, const std::string& x, const std::string& name,
                           int64_t filters, int64_t pad, const std::string& pool) {
  int64_t cin = b.channels(x);
  double bound = 1.0 / std::sqrt(static_cast<double>(cin * 25));
  auto w = b.param(name + "_weights", b.uniform({filters, cin, 5, 5}, bound));
  auto bias = b.param(name + "_offset", b.uniform({filters}, bound));
  auto y = b.relu(b.conv(x, name, w, bias, 1, pad, 1), name + "_relu");
  return b.max_pool(y, pool, 2, 2, 0);
}

std::string fc(ZooBuilder& b, const std::string& x, const std::string& name, int64_t out,
               const std::string& output = "") {
  int64_t in = b.dims(x)[0];
  double bound = 1.0 / std::sqrt(static_cast<double>(in));
  auto w = b.param(name + "_weights", b.uniform({in, out}, bound));
  auto bias = b.param(name + "_offset", b.uniform({out}, bound));
  return b.gemm(x, name, w, bias, output);
}

}  // namespace

Graph zoo_lenet(const ZooOptions& o) {
  ZooBuilder b("lenet", o);
  auto y = conv_relu_pool(b, b.image(), "conv1", 6, 2, "pool1");
  y = conv_relu_pool(b, y, "conv2", 16, 0, "pool2");
  y = b.flatten(y, "flatten");
  y = b.relu(fc(b, y, "fc1", 120), "fc1_relu");
  y = b.relu(fc(b, y, "fc2", 84), "fc2_relu");
  return b.finish(fc(b, y, "fc3", o.classes, "logits"));
}

}  // namespace slim::zoo_detail
