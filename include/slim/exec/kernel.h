#pragma once
/// What an op kernel sees. Kernels live in src/exec/kernels_*.cc, each file with its table below.
#include <string>
#include <vector>

#include "slim/ir/graph.h"

namespace slim {

struct KernelContext {
  const Node& node;
  std::vector<at::Tensor> in;   ///< undefined tensor = absent optional input
  std::vector<at::Tensor> out;  ///< sized to node.outputs; kernels fill what they produce
  bool training = false;
  int64_t opset = 13;

  /// True when input i may be overwritten: nothing else references its data (the executor
  /// handed over the last reference) and autograd does not need it. Element-wise kernels then
  /// compute in place, as PyTorch models do with ReLU(inplace=True).
  bool can_overwrite(size_t i) const {
    if (!has(i) || (training && !inplace_in_training)) return false;
    const at::Tensor& t = in[i];
    return t.use_count() == 1 && t.storage().use_count() == 1 &&
           (t.is_contiguous() || t.is_contiguous(at::MemoryFormat::ChannelsLast)) &&
           (!training || !t.requires_grad() || t.grad_fn() != nullptr);
  }
  bool inplace_in_training = false;  ///< set by the executor when the producer's backward does
                                     ///< not need its output (Conv, BatchNormalization, Add)
  bool has(size_t i) const { return i < in.size() && in[i].defined(); }
  /// Input i, which must be present.
  const at::Tensor& x(size_t i) const {
    SLIM_CHECK(has(i), node.label(), ": required input #", i, " is missing");
    return in[i];
  }
};

using KernelFn = void (*)(KernelContext&);

/// Looks up the kernel for an op type; nullptr if none.
KernelFn find_kernel(const std::string& op_type);

/// Reads a 1-D integer tensor (shape, axes, pads) as int64 values.
std::vector<int64_t> to_int_vector(const at::Tensor& t);
/// The dims a Shape node outputs for an input of shape `dims` (its start/end attributes,
/// opset 15, clamped as ONNX specifies).
std::vector<int64_t> shape_op_dims(const Node& n, const std::vector<int64_t>& dims);
/// Inputs `a` and `b` of the node have one element type; the error names the node and both.
void check_same_dtype(const KernelContext& c, const at::Tensor& a, const at::Tensor& b);
/// Normalizes a possibly negative axis for a tensor of rank `rank`; errors name the node.
int64_t normalize_axis(const Node& n, int64_t axis, int64_t rank);
/// The mean of a 4-D float tensor over dims 2 and 3 (GlobalAveragePool, ReduceMean over H and W)
/// in one pass in its own layout, NCHW or NHWC, summed in double; an undefined tensor when x is
/// anything else or autograd needs the result (the caller then uses ATen, whose reduction costs
/// ~9 us a call at batch 1 on NHWC squeeze-excitation inputs).
at::Tensor spatial_mean(const KernelContext& c, const at::Tensor& x, bool keepdim);

// Registration tables, one per kernel file.
struct KernelEntry {
  const char* op_type;
  KernelFn fn;
};
const std::vector<KernelEntry>& nn_kernels();
const std::vector<KernelEntry>& tensor_kernels();
const std::vector<KernelEntry>& math_kernels();
const std::vector<KernelEntry>& elementwise_kernels();
const std::vector<KernelEntry>& reduce_kernels();
const std::vector<KernelEntry>& resize_kernels();

}  // namespace slim
