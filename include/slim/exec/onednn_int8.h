#pragma once
// Int8 inference of ONNX QDQ Conv and Gemm on oneDNN's u8/s8 x s8 kernels (VNNI where the CPU
// has it). A quantized model written in the QDQ form only simulates int8: every
// DequantizeLinear turns values back into float and the Conv runs in float. The executor
// recognises the pattern
//   x_q -> DequantizeLinear(x_scale, zp)            -> Conv/Gemm input 0
//   w_q -> DequantizeLinear(w_scale, 0, axis)        -> input 1   (int8 initializer)
//   b_q -> DequantizeLinear(b_scale, 0) | float bias -> input 2   (optional)
//   output -> [Relu | LeakyRelu | Clip] -> [QuantizeLinear(y_scale, zp)]
// and runs it as one oneDNN primitive on x_q itself: s32 accumulation, per-channel output scales
// x_scale * w_scale / y_scale, the activation as a post-op and the u8/s8 output rounded half to
// even and saturated, as QuantizeLinear does. Weights are reordered once, activations stay NHWC.
// Activation zero points are 0 (u8 or s8), or 128 on u8: signed values stored as uint8 (ONNX
// Runtime's preferred form), which the kernel reads and writes as s8 with the top bit flipped.
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "slim/exec/kernel.h"
#include "slim/exec/onednn_conv.h"

namespace slim {

/// The values one fused int8 Conv or Gemm reads, by name ("" when absent).
struct Int8Operands {
  std::string x, x_scale, x_zero_point;  ///< quantized activation (a runtime value)
  std::string w, w_scale, w_zero_point;  ///< int8 weight initializer and its DequantizeLinear's
  int64_t w_axis = 0;                    ///< ... per-channel axis (the output-channel dim)
  std::string b, b_scale, b_zero_point;  ///< float bias (b_scale "") or int32 bias and its DQ's
  std::string y_scale, y_zero_point;     ///< trailing QuantizeLinear ("" y_scale: float output)
  /// Names in the order OneDnnInt8::run takes its tensors.
  std::vector<std::string> names() const {
    return {x, x_scale, x_zero_point, w,       w_scale,     w_zero_point,
            b, b_scale, b_zero_point, y_scale, y_zero_point};
  }
};

/// The input side of the pattern around Conv or Gemm node `op` of `g`: input 0 a
/// DequantizeLinear of a runtime value with a scalar scale and zero point 0 (or u8 128), input 1 a
/// DequantizeLinear of an int8 initializer (zero points 0, per tensor or along the output-channel
/// axis), input 2 absent, a float initializer or a DequantizeLinear of an int32 initializer.
/// Conv must be 2-D; Gemm must have transA = 0 and alpha = beta = 1. `producer` returns the node
/// that computes a value (nullptr for inputs and initializers). y_scale/y_zero_point stay empty.
std::optional<Int8Operands> match_int8_operands(
    const Graph& g, const Node& op, const std::function<const Node*(const std::string&)>& producer);

/// True if QuantizeLinear `q` can end a fused int8 step: scalar float scale initializer, zero point
/// absent, a uint8/int8 scalar initializer equal to 0, or a uint8 128.
bool int8_output_quantize(const Graph& g, const Node& q);

/// True if oneDNN's int8 kernels on this CPU (as far as ONEDNN_MAX_CPU_ISA allows) compute
/// u8/s8 x s8 products exactly for any int8 weights: the CPU has VNNI (Intel since Cascade Lake
/// and Ice Lake, AMD since Zen 4). Without VNNI the kernels multiply with vpmaddubsw, which adds
/// two u8 x s8 products into a saturating int16, exact only while |w| <= kInt8WeightBoundNoVnni
/// (255 * 2 * 64 < 32768), and they run s8 inputs on weights halved and rounded. There
/// OneDnnInt8 runs only u8 inputs with such weights in int8; any other step runs as its QDQ
/// nodes (the float simulation, the same results to rounding).
bool int8_exact_for_any_weights();
constexpr int kInt8WeightBoundNoVnni = 64;

/// One fused int8 step of the executor. Not thread-safe (neither is the Executor).
class Int8Step {
 public:
  virtual ~Int8Step() = default;
  /// Computes the step's output from the tensors its operands name (undefined where absent) and
  /// returns true, or returns false without touching `out` when this call does not qualify: the
  /// caller then runs the original nodes.
  virtual bool run(const std::vector<at::Tensor>& in, at::Tensor& out) = 0;
  /// The operand the step has copied into its own layout (weights), or -1: after a run that
  /// returned true, the step's result no longer depends on that tensor's storage.
  virtual int packed_operand() const { return -1; }
  /// Drops the step's reference to packed_operand() and stops reading or checking it: later
  /// runs take it undefined. Runs whose input type or shape needs the weights packed again then
  /// return false. Only for operands that never change again (Executor::set_release_weights).
  virtual void release_packed() {}
};

/// One fused int8 Conv or Gemm.
class OneDnnInt8 : public Int8Step {
 public:
  /// `op` is the Conv or Gemm node (kept by reference), `act` the fused activation.
  OneDnnInt8(const Node& op, Int8Operands operands, FusedActivation act);
  ~OneDnnInt8();
  OneDnnInt8(const OneDnnInt8&) = delete;
  OneDnnInt8& operator=(const OneDnnInt8&) = delete;

  const Int8Operands& operands() const { return ops_; }

  /// Computes the fused output from the tensors named by operands().names() (undefined where
  /// absent) and returns true: the QuantizeLinear's u8/s8 tensor when there is one, else the
  /// float output after the activation; NHWC for a Conv. Returns false without touching `out`
  /// when this call does not qualify (a zero point is not 0, a dtype or shape is not supported,
  /// a scale is not finite, weights wider than the CPU's kernels accumulate exactly (see
  /// int8_exact_for_any_weights), or oneDNN offers only its reference kernel): the caller then
  /// runs the original nodes. Weights, scales and bias are prepared again only when one of their
  /// tensors changes (same Stamp logic as OneDnnConv).
  bool run(const std::vector<at::Tensor>& in, at::Tensor& out) override;
  /// The weights (operand 3) once a run has packed them.
  int packed_operand() const override;
  void release_packed() override;

 private:
  struct Params;
  struct Plan;
  bool prepare(const std::vector<at::Tensor>& in);
  const Node& node_;
  Int8Operands ops_;
  FusedActivation act_;
  bool released_ = false;           ///< release_packed() was called: operands are no longer checked
  std::unique_ptr<Params> params_;  ///< scales, bias and operand Stamps; null before first run
  std::map<std::vector<int64_t>, std::unique_ptr<Plan>> plans_;  ///< by input dims
  std::vector<int64_t> last_dims_;                               ///< of the last run ...
  std::unique_ptr<Plan>* last_plan_ = nullptr;                   ///< ... and its plan slot
};

/// The values an int8 Add step reads: a residual Add of two quantized values,
///   a_q -> DequantizeLinear, b_q -> DequantizeLinear -> Add -> [Relu] -> QuantizeLinear(y).
struct Int8AddOperands {
  std::string a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point;
  std::vector<std::string> names() const {
    return {a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point};
  }
};

/// The input side of an int8 Add: both inputs of Add node `op` are DequantizeLinear of runtime
/// values with scalar scales and zero points an int8 step takes (0, or 128 on u8). y_* stay empty.
std::optional<Int8AddOperands> match_int8_add(
    const Graph& g, const Node& op, const std::function<const Node*(const std::string&)>& producer);

/// DequantizeLinear(a) + DequantizeLinear(b) [-> Relu] -> QuantizeLinear as one pass over the
/// integer tensors, with the float arithmetic of the nodes it replaces (each input dequantized in
/// float, summed, divided by y_scale, rounded half to even, saturated): ONNX Runtime's QLinearAdd.
/// The inputs must have the same shape (no broadcasting); any layout, the output takes a's.
class Int8Add : public Int8Step {
 public:
  Int8Add(Int8AddOperands operands, bool relu);
  ~Int8Add() override;
  const Int8AddOperands& operands() const { return ops_; }
  bool run(const std::vector<at::Tensor>& in, at::Tensor& out) override;

 private:
  struct Params;
  Int8AddOperands ops_;
  bool relu_;
  std::unique_ptr<Params> params_;  ///< scales, zero points and their Stamps; null before a run
};

/// The values an int8 MaxPool step reads: x_q -> DequantizeLinear -> MaxPool -> QuantizeLinear(y).
struct Int8PoolOperands {
  std::string x, x_scale, x_zero_point, y_scale, y_zero_point;
  std::vector<std::string> names() const {
    return {x, x_scale, x_zero_point, y_scale, y_zero_point};
  }
};

/// The input side of an int8 MaxPool: 2-D MaxPool node `op` without the Indices output reads a
/// DequantizeLinear of a runtime value with a scalar scale and a zero point an int8 step takes.
/// y_* stay empty.
std::optional<Int8PoolOperands> match_int8_maxpool(
    const Graph& g, const Node& op, const std::function<const Node*(const std::string&)>& producer);

/// DequantizeLinear -> MaxPool -> QuantizeLinear on the integer tensor: dequantization is
/// monotone, so the max of the dequantized window is the dequantized max level, and pooling the
/// levels (a vectorized loop in NHWC, LibTorch's quantized max_pool2d otherwise) gives exactly
/// the float result. The levels are
/// requantized (dequantize, divide by y_scale, round half to even) only when the output's scale
/// or zero point differs from the input's. ONNX Runtime runs this group in float.
class Int8MaxPool : public Int8Step {
 public:
  /// `op` is the MaxPool node (kept by reference).
  Int8MaxPool(const Node& op, Int8PoolOperands operands);
  ~Int8MaxPool() override;
  const Int8PoolOperands& operands() const { return ops_; }
  bool run(const std::vector<at::Tensor>& in, at::Tensor& out) override;

 private:
  struct Params;
  const Node& node_;
  Int8PoolOperands ops_;
  std::unique_ptr<Params> params_;  ///< scales, zero points and their Stamps; null before a run
};

/// The values an int8 table step reads: x_q -> DequantizeLinear -> f -> QuantizeLinear(y).
using Int8TableOperands = Int8PoolOperands;

/// The input side of an int8 table step starting at node `op`: an element-wise node reading a
/// DequantizeLinear of a runtime value with a scalar scale and a zero point an int8 step takes,
/// as its first input. y_* stay empty.
std::optional<Int8TableOperands> match_int8_table(
    const Graph& g, const Node& op, const std::function<const Node*(const std::string&)>& producer);

/// The levels behind DequantizeLinear `dq` (may be null) of a runtime value with a positive scalar
/// scale and a zero point an int8 step takes: x, x_scale and x_zero_point set, y_* empty.
std::optional<Int8PoolOperands> int8_activation_levels(const Graph& g, const Node* dq);

/// DequantizeLinear -> f -> QuantizeLinear, f element-wise (a HardSwish, HardSigmoid, Sigmoid,
/// SiLU's Sigmoid and Mul, or the activations of PostOp), as a lookup in a table of the 256
/// output levels: the table is f computed by the same ATen functions on every input level
/// dequantized, then quantized as QuantizeLinear does, so each level gives what the nodes give.
/// Recomputed when a scale or zero point changes. ONNX Runtime runs these nodes in float between
/// its int8 convs (EfficientNet's and MobileNetV3's activations and squeeze-excitation gates).
class Int8Table : public Int8Step {
 public:
  Int8Table(Int8TableOperands operands, std::vector<PostOp> f);
  ~Int8Table() override;
  const Int8TableOperands& operands() const { return ops_; }
  bool run(const std::vector<at::Tensor>& in, at::Tensor& out) override;

 private:
  struct Params;
  Int8TableOperands ops_;
  std::vector<PostOp> f_;
  std::unique_ptr<Params> params_;  ///< the table, scales, zero points and their Stamps
};

/// Squeeze-excitation around int8 convs (MobileNetV3, EfficientNet): a value x_q's levels, read
/// through DequantizeLinear and an optional element-wise activation fx (HardSwish, SiLU's
/// Sigmoid and Mul, ...), feed a GlobalAveragePool and a Mul by a per-channel gate.
/// Int8GlobalAvgPool does x_q -> DequantizeLinear -> [fx] -> GlobalAveragePool ->
/// QuantizeLinear(y) in one pass over the levels: each level's float value fx(dequantized) comes
/// from a 256-entry table computed with the ATen functions the nodes use, the channel sums are
/// accumulated in double (ATen sums in float: the mean can differ in its last bits, so a level
/// that falls within rounding of a quantization boundary may differ by one) and quantized as
/// QuantizeLinear does. The operands are those of Int8PoolOperands. ONNX Runtime runs these
/// nodes in float.
class Int8GlobalAvgPool : public Int8Step {
 public:
  Int8GlobalAvgPool(Int8PoolOperands operands, std::vector<PostOp> fx);
  ~Int8GlobalAvgPool() override;
  const Int8PoolOperands& operands() const { return ops_; }
  bool run(const std::vector<at::Tensor>& in, at::Tensor& out) override;

 private:
  struct Params;
  Int8PoolOperands ops_;
  std::vector<PostOp> fx_;
  std::unique_ptr<Params> params_;  ///< the table, scales, zero points and their Stamps
};

/// The values an int8 channel-scale step reads: x_q -> DequantizeLinear -> [fx] -> Mul(.,
/// gate(DequantizeLinear(s_q))) -> QuantizeLinear(y), s_q one level per (batch, channel).
struct Int8ScaleOperands {
  std::string x, x_scale, x_zero_point, s, s_scale, s_zero_point, y_scale, y_zero_point;
  std::vector<std::string> names() const {
    return {x, x_scale, x_zero_point, s, s_scale, s_zero_point, y_scale, y_zero_point};
  }
};

/// The squeeze-excitation Mul on levels: each output level is QuantizeLinear(fx(dequantized x
/// level) * gate(dequantized s level of (n, c))), fx's and the gate's (HardSigmoid, Sigmoid) values
/// from 256-entry tables computed with the ATen functions the nodes use: the float operations of
/// the nodes it replaces, in one pass from x_q's levels to y's. x_q is
/// [N, C, H, W] (NCHW or NHWC), s_q [N, C, 1, 1]; the output takes x_q's layout.
class Int8ChannelScale : public Int8Step {
 public:
  Int8ChannelScale(Int8ScaleOperands operands, std::vector<PostOp> fx, std::vector<PostOp> gate);
  ~Int8ChannelScale() override;
  const Int8ScaleOperands& operands() const { return ops_; }
  bool run(const std::vector<at::Tensor>& in, at::Tensor& out) override;

 private:
  struct Params;
  Int8ScaleOperands ops_;
  std::vector<PostOp> fx_, gate_;
  std::unique_ptr<Params> params_;  ///< the table, scales, zero points and their Stamps
};

}  // namespace slim
