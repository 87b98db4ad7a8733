#include "slim/zoo/builder.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

namespace slim {

namespace {

using Ints = std::vector<int64_t>;

constexpr char kRelu6Min[] = "relu6_min";
constexpr char kRelu6Max[] = "relu6_max";

}  // namespace

ZooBuilder::ZooBuilder(const std::string& model, const ZooOptions& options)
    : model_(model),
      input_(options.input),
      draw_(options.draw_weights),
      gen_(at::make_generator<at::CPUGeneratorImpl>(options.seed)) {
  g_.name = model;
  g_.opset = 13;
  ValueInfo in;
  in.name = image_;
  in.dtype = at::kFloat;
  in.has_shape = true;
  in.shape = {kDynamicDim, input_.at(0), input_.at(1), input_.at(2)};
  in.dim_names = {"N", "", "", ""};
  g_.inputs.push_back(in);
  dims_[image_] = input_;
}

const std::vector<int64_t>& ZooBuilder::dims(const std::string& value) const {
  auto it = dims_.find(value);
  SLIM_ASSERT(it != dims_.end(), "zoo ", model_, ": value '", value, "' not built yet");
  return it->second;
}

at::Tensor ZooBuilder::kaiming_uniform(const Ints& shape, int64_t fan_in) {
  return uniform(shape, std::sqrt(6.0 / static_cast<double>(fan_in)));
}

at::Tensor ZooBuilder::kaiming_normal(const Ints& shape, int64_t fan_in) {
  if (!draw_) return at::empty(shape, at::kFloat);
  return at::empty(shape, at::kFloat)
      .normal_(0.0, std::sqrt(2.0 / static_cast<double>(fan_in)), gen_);
}

at::Tensor ZooBuilder::uniform(const Ints& shape, double bound) {
  if (!draw_) return at::empty(shape, at::kFloat);
  return at::empty(shape, at::kFloat).uniform_(-bound, bound, gen_);
}

std::string ZooBuilder::param(const std::string& name, const at::Tensor& value) {
  SLIM_ASSERT(!g_.initializers.count(name), "zoo ", model_, ": parameter '", name,
              "' defined twice");
  g_.initializers[name] = value;
  return name;
}

Node& ZooBuilder::add_node(const std::string& op, const std::string& name,
                           const std::vector<std::string>& inputs, const std::string& output,
                           const Ints& out_dims) {
  Node n;
  n.op_type = op;
  n.name = name;
  n.inputs = inputs;
  n.outputs = {output.empty() ? name : output};
  SLIM_ASSERT(!dims_.count(n.outputs[0]), "zoo ", model_, ": value '", n.outputs[0],
              "' defined twice");
  dims_[n.outputs[0]] = out_dims;
  g_.nodes.push_back(std::move(n));
  return g_.nodes.back();
}

Ints ZooBuilder::window_out(const std::string& layer, const Ints& in, int64_t c_out, int64_t k,
                            int64_t stride, int64_t pad) {
  SLIM_CHECK(in[1] + 2 * pad >= k && in[2] + 2 * pad >= k, model_, ": input ",
             shape_to_string(input_), " is too small for the network's strides: layer '", layer,
             "' (", k, "x", k, " window, stride ", stride, ", pad ", pad, ") gets a ", in[1], "x",
             in[2], " map");
  return {c_out, (in[1] + 2 * pad - k) / stride + 1, (in[2] + 2 * pad - k) / stride + 1};
}

std::string ZooBuilder::conv(const std::string& x, const std::string& name,
                             const std::string& weight, const std::string& bias, int64_t stride,
                             int64_t pad, int64_t group) {
  const Ints& in = dims(x);
  const at::Tensor& w = g_.initializers.at(weight);
  SLIM_ASSERT(w.dim() == 4 && in.size() == 3 && w.size(1) * group == in[0], "zoo ", model_,
              ": conv '", name, "' weight ", shape_to_string(w.sizes().vec()), " does not fit ",
              shape_to_string(in), " with group ", group);
  int64_t k = w.size(2);
  Ints out = window_out(name, in, w.size(0), k, stride, pad);
  std::vector<std::string> inputs{x, weight};
  if (!bias.empty()) inputs.push_back(bias);
  Node& n = add_node("Conv", name, inputs, "", out);
  n.attrs["kernel_shape"] = Ints{k, k};
  n.attrs["strides"] = Ints{stride, stride};
  n.attrs["pads"] = Ints{pad, pad, pad, pad};
  n.attrs["dilations"] = Ints{1, 1};
  n.attrs["group"] = group;
  return n.outputs[0];
}

std::string ZooBuilder::batch_norm(const std::string& x, const std::string& name,
                                   const std::string& param_prefix) {
  int64_t c = channels(x);
  std::vector<std::string> inputs{x, param(param_prefix + "_scale", at::ones({c})),
                                  param(param_prefix + "_offset", at::zeros({c})),
                                  param(param_prefix + "_mean", at::zeros({c})),
                                  param(param_prefix + "_variance", at::ones({c}))};
  Node& n = add_node("BatchNormalization", name, inputs, "", dims(x));
  n.attrs["epsilon"] = 1e-5f;
  n.attrs["momentum"] = 0.9f;
  return n.outputs[0];
}

std::string ZooBuilder::relu(const std::string& x, const std::string& name) {
  return add_node("Relu", name, {x}, "", dims(x)).outputs[0];
}

std::string ZooBuilder::relu6(const std::string& x, const std::string& name) {
  if (!g_.initializers.count(kRelu6Min)) {
    // Opset 13 takes Clip's bounds as inputs; scalars, shared by every ReLU6.
    param(kRelu6Min, at::scalar_tensor(0.0, at::kFloat));
    param(kRelu6Max, at::scalar_tensor(6.0, at::kFloat));
    frozen_ = {kRelu6Min, kRelu6Max};
  }
  return add_node("Clip", name, {x, kRelu6Min, kRelu6Max}, "", dims(x)).outputs[0];
}

std::string ZooBuilder::add(const std::string& a, const std::string& b, const std::string& name) {
  SLIM_ASSERT(dims(a) == dims(b), "zoo ", model_, ": add '", name, "' of ",
              shape_to_string(dims(a)), " and ", shape_to_string(dims(b)));
  return add_node("Add", name, {a, b}, "", dims(a)).outputs[0];
}

std::string ZooBuilder::max_pool(const std::string& x, const std::string& name, int64_t k,
                                 int64_t stride, int64_t pad) {
  const Ints& in = dims(x);
  Ints out = window_out(name, in, in[0], k, stride, pad);
  Node& n = add_node("MaxPool", name, {x}, "", out);
  n.attrs["kernel_shape"] = Ints{k, k};
  n.attrs["strides"] = Ints{stride, stride};
  n.attrs["pads"] = Ints{pad, pad, pad, pad};
  return n.outputs[0];
}

std::string ZooBuilder::global_avg_pool(const std::string& x, const std::string& name) {
  return add_node("GlobalAveragePool", name, {x}, "", {channels(x), 1, 1}).outputs[0];
}

std::string ZooBuilder::classifier(const std::string& x, const std::string& pool,
                                   const std::string& fc, const std::string& weight,
                                   const std::string& bias, int64_t classes,
                                   const std::function<double(int64_t)>& bound) {
  auto y = flatten(global_avg_pool(x, pool), "flatten");
  const int64_t in = dims(y)[0];
  auto w = param(weight, uniform({in, classes}, bound(in)));
  auto b = param(bias, at::zeros({classes}));
  return gemm(y, fc, w, b, "logits");
}

std::string ZooBuilder::flatten(const std::string& x, const std::string& name) {
  int64_t features = 1;
  for (auto d : dims(x)) features *= d;
  Node& n = add_node("Flatten", name, {x}, "", {features});
  n.attrs["axis"] = int64_t{1};
  return n.outputs[0];
}

std::string ZooBuilder::gemm(const std::string& x, const std::string& name,
                             const std::string& weight, const std::string& bias,
                             const std::string& output) {
  const at::Tensor& w = g_.initializers.at(weight);
  SLIM_ASSERT(w.dim() == 2 && dims(x).size() == 1 && w.size(0) == dims(x)[0], "zoo ", model_,
              ": fc '", name, "' weight ", shape_to_string(w.sizes().vec()), " does not fit ",
              shape_to_string(dims(x)));
  return add_node("Gemm", name, {x, weight, bias}, output, {w.size(1)}).outputs[0];
}

Graph ZooBuilder::finish(const std::string& output) {
  const Ints& d = dims(output);
  ValueInfo out;
  out.name = output;
  out.dtype = at::kFloat;
  out.has_shape = true;
  out.shape = {kDynamicDim};
  out.shape.insert(out.shape.end(), d.begin(), d.end());
  out.dim_names.assign(out.shape.size(), "");
  out.dim_names[0] = "N";
  g_.outputs = {out};
  for (const auto& [name, dd] : dims_) {
    if (name == image_ || name == output) continue;
    ValueInfo v = out;
    v.name = name;
    v.shape = {kDynamicDim};
    v.shape.insert(v.shape.end(), dd.begin(), dd.end());
    v.dim_names.assign(v.shape.size(), "");
    v.dim_names[0] = "N";
    g_.value_info[name] = v;
  }
  g_.mark_default_trainable();
  for (const auto& f : frozen_) g_.trainable.erase(f);
  g_.verify();
  return std::move(g_);
}

}  // namespace slim
