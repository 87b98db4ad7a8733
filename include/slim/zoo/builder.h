#pragma once
/// The builder the zoo's networks and NAS's search spaces share: appends nodes in order, tracks
/// each value's per-sample shape, and draws weights from one seeded generator.
#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "slim/ir/graph.h"
#include "slim/zoo/zoo.h"

namespace slim {

/// Appends nodes in topological order and tracks each value's per-sample shape, so a layer can
/// say precisely when the input is too small and value_info is exact without a probe run.
/// Weights come from one generator seeded by ZooOptions::seed and are drawn in build order.
/// Values are named like the nodes that produce them.
class ZooBuilder {
 public:
  /// Starts graph `model` with the input "image" [N, C, H, W] from `options.input` (already
  /// validated by zoo_build).
  ZooBuilder(const std::string& model, const ZooOptions& options);

  const std::string& image() const { return image_; }
  const std::string& model() const { return model_; }
  /// Per-sample shape of a value built so far: {C, H, W} or {features}.
  const std::vector<int64_t>& dims(const std::string& value) const;
  int64_t channels(const std::string& value) const { return dims(value).at(0); }

  // ---- Weights (fan_in is the number of inputs feeding one output unit) -------------------
  /// U(-sqrt(6 / fan_in), +sqrt(6 / fan_in)): Paddle's MSRA / KaimingUniform.
  at::Tensor kaiming_uniform(const std::vector<int64_t>& shape, int64_t fan_in);
  /// N(0, sqrt(2 / fan_in)): MSRA-normal, Paddle's default for conv2d weights.
  at::Tensor kaiming_normal(const std::vector<int64_t>& shape, int64_t fan_in);
  /// U(-bound, bound).
  at::Tensor uniform(const std::vector<int64_t>& shape, double bound);
  /// Adds an initializer and returns its name.
  std::string param(const std::string& name, const at::Tensor& value);

  // ---- Layers: each returns its output value, named `name` --------------------------------
  /// Square kernel k, symmetric pads; C_out from the weight [C_out, C_in / group, k, k].
  /// `bias` may be "" (no bias).
  std::string conv(const std::string& x, const std::string& name, const std::string& weight,
                   const std::string& bias, int64_t stride, int64_t pad, int64_t group);
  /// Inference-form BatchNormalization over `<prefix>_scale|_offset|_mean|_variance`,
  /// initialised 1, 0, 0, 1 (Paddle's and PyTorch's defaults; epsilon 1e-5, momentum 0.9).
  std::string batch_norm(const std::string& x, const std::string& name,
                         const std::string& param_prefix);
  std::string relu(const std::string& x, const std::string& name);
  /// ReLU6 as Clip(x, 0, 6); the bounds are two shared initializers, not trainable.
  std::string relu6(const std::string& x, const std::string& name);
  std::string add(const std::string& a, const std::string& b, const std::string& name);
  std::string max_pool(const std::string& x, const std::string& name, int64_t k, int64_t stride,
                       int64_t pad);
  std::string global_avg_pool(const std::string& x, const std::string& name);
  /// [N, C, H, W] -> [N, C*H*W].
  std::string flatten(const std::string& x, const std::string& name);
  /// Y = X W + b with W [in, out] (Paddle's fc layout). `output` names the value when it is
  /// not `name` (the final "logits").
  std::string gemm(const std::string& x, const std::string& name, const std::string& weight,
                   const std::string& bias, const std::string& output = "");

  /// The head every family ends in: global average pool `pool`, "flatten", and the fc `fc` to
  /// `classes` with weights [in, classes] drawn U(-bound(in), bound(in)) as `weight` and a zero
  /// bias `bias`. Returns its output, "logits".
  std::string classifier(const std::string& x, const std::string& pool, const std::string& fc,
                         const std::string& weight, const std::string& bias, int64_t classes,
                         const std::function<double(int64_t)>& bound);

  /// Declares `output` as the graph output, marks trainable parameters, fills value_info and
  /// verifies the graph.
  Graph finish(const std::string& output);

 private:
  Node& add_node(const std::string& op, const std::string& name,
                 const std::vector<std::string>& inputs, const std::string& output,
                 const std::vector<int64_t>& out_dims);
  /// {C, H_out, W_out} of a k x k window op over `in` = {C_in, H, W}; errors when the padded
  /// map is smaller than the window.
  std::vector<int64_t> window_out(const std::string& layer, const std::vector<int64_t>& in,
                                  int64_t c_out, int64_t k, int64_t stride, int64_t pad);

  std::string model_;
  std::vector<int64_t> input_;
  bool draw_ = true;
  std::string image_ = "image";
  Graph g_;
  at::Generator gen_;
  std::map<std::string, std::vector<int64_t>> dims_;
  std::vector<std::string> frozen_;  ///< initializers that are constants, not parameters
};

}  // namespace slim
