#include "slim/exec/infer_shapes.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <sstream>

#include "slim/exec/executor.h"

namespace slim {

std::vector<std::vector<int64_t>> parse_input_shapes(const std::string& text) {
  std::vector<std::vector<int64_t>> shapes;
  SLIM_CHECK(!text.empty(), "--input '': empty shape (expected e.g. 3,224,224)");
  std::stringstream all(text);
  std::string one;
  while (std::getline(all, one, ';')) {
    std::vector<int64_t> shape;
    std::stringstream ss(one);
    std::string tok;
    while (std::getline(ss, tok, ',')) {
      size_t used = 0;
      long long v = -1;
      try {
        v = std::stoll(tok, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      SLIM_CHECK(used == tok.size() && v > 0, "--input '", text,
                 "': dims must be positive integers separated by ',' (e.g. 3,224,224), got '",
                 tok, "'");
      shape.push_back(v);
    }
    SLIM_CHECK(!shape.empty(), "--input '", text, "': empty shape");
    shapes.push_back(shape);
  }
  return shapes;
}

void set_input_shapes(Graph& g, const std::vector<std::vector<int64_t>>& shapes) {
  SLIM_CHECK(shapes.size() <= g.inputs.size(), "got ", shapes.size(), " input shapes but graph '",
             g.name, "' has ", g.inputs.size(), " input(s)");
  for (size_t i = 0; i < shapes.size(); ++i) {
    ValueInfo& in = g.inputs[i];
    std::vector<int64_t> s = shapes[i];
    std::vector<std::string> names(s.size(), "");
    if (!in.has_shape || s.size() + 1 == in.shape.size()) {
      s.insert(s.begin(), kDynamicDim);
      names.insert(names.begin(),
                   in.has_shape && !in.dim_names.empty() && !in.dim_names[0].empty()
                       ? in.dim_names[0]
                       : std::string("N"));
    } else {
      SLIM_CHECK(s.size() == in.shape.size(), "input '", in.name, "' has rank ", in.shape.size(),
                 " (", in.shape_str(), "); the given shape ", shape_to_string(shapes[i]),
                 " has neither that rank nor one less");
    }
    in.shape = s;
    in.dim_names = names;
    in.has_shape = true;
  }
}

std::vector<at::Tensor> example_inputs(const Graph& g, int64_t dynamic_as, bool random) {
  std::vector<at::Tensor> xs;
  for (const auto& in : g.inputs) {
    SLIM_CHECK(in.has_shape, "input '", in.name,
               "' has no declared shape; give one with --input (e.g. --input 3,224,224)");
    std::vector<int64_t> s = in.shape;
    for (size_t d = 0; d < s.size(); ++d) {
      if (s[d] != kDynamicDim) continue;
      SLIM_CHECK(d == 0, "input '", in.name, "' has an unknown dim ", d, " (shape ",
                 in.shape_str(), "); give the shape with --input");
      s[d] = dynamic_as;
    }
    if (random && at::isFloatingType(in.dtype))
      xs.push_back(at::randn(s, at::TensorOptions().dtype(in.dtype)));
    else
      xs.push_back(at::zeros(s, at::TensorOptions().dtype(in.dtype)));
  }
  return xs;
}

namespace {

/// The shape and type of every value a node of `g` computes, from one run at `batch`.
std::map<std::string, Executor::ValueShape> probe(Graph& g, int64_t batch) {
  Executor ex(g);
  ex.set_check_inputs(false);
  // ATen's convolutions: oneDNN's plans would keep a reordered copy of every weight (a
  // dequantized float one in an int8 model) until the probe ends.
  ex.set_onednn(false);
  std::map<std::string, Executor::ValueShape> shapes;
  ex.set_shape_recorder(&shapes);
  at::NoGradGuard no_grad;
  // Nor oneDNN's primitive cache (ATen's convolutions go through it), whose primitives keep
  // their scratch buffers.
  const int capacity = dnnl::get_primitive_cache_capacity();
  dnnl::set_primitive_cache_capacity(0);
  try {
    ex.run(example_inputs(g, batch));
  } catch (...) {
    dnnl::set_primitive_cache_capacity(capacity);
    throw;
  }
  dnnl::set_primitive_cache_capacity(capacity);
  return shapes;
}

}  // namespace

void infer_shapes(Graph& g) {
  bool dynamic = false;
  for (const auto& in : g.inputs)
    for (auto d : in.shape) dynamic = dynamic || d == kDynamicDim;
  auto first = probe(g, 1);
  std::map<std::string, Executor::ValueShape> second;
  if (dynamic) {
    try {
      second = probe(g, 2);
    } catch (const Error&) {
      // The graph only runs at batch 1 (e.g. a batch baked into a Reshape): all dims are fixed.
      second.clear();
    }
  }
  g.value_info.clear();
  for (const auto& [name, t] : first) {
    ValueInfo v;
    v.name = name;
    v.dtype = t.dtype;
    v.has_shape = true;
    v.shape = t.sizes;
    v.dim_names.assign(v.shape.size(), "");
    auto it = second.find(name);
    if (it != second.end() && it->second.sizes.size() == t.sizes.size()) {
      for (size_t d = 0; d < t.sizes.size(); ++d)
        if (it->second.sizes[d] != t.sizes[d]) {
          v.shape[d] = kDynamicDim;
          v.dim_names[d] = "N";
        }
    }
    if (g.is_output(name)) {
      for (auto& o : g.outputs)
        if (o.name == name) {
          o.dtype = v.dtype;
          o.has_shape = true;
          o.shape = v.shape;
          o.dim_names = v.dim_names;
        }
    } else {
      g.value_info[name] = v;
    }
  }
}

}  // namespace slim
