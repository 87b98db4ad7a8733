#pragma once
#include <string>
#include <vector>

#include "slim/ir/graph.h"
#include "slim/quant/quant_options.h"
#include "slim/quant/scale_table.h"

namespace slim {

struct QdqReport {
  int64_t nodes = 0;        ///< Conv/Gemm/MatMul nodes quantized
  int64_t activations = 0;  ///< activation QuantizeLinear/DequantizeLinear pairs inserted
  int64_t weights = 0;      ///< weight initializers stored as int8
  std::vector<std::string> skipped;  ///< ops of a quantized type left in float, with the reason
};

/// quantize_qdq: rewrites every quantization target (quant_targets.h) into ONNX QDQ form, as ONNX
/// Runtime's quantizer emits it and Slim's executor runs as int8:
///  - input activation a, and with o.quantize_outputs the value ending each target's step
///    (QuantTarget::output): a -> QuantizeLinear -> DequantizeLinear -> every reader of a, one
///    pair per value, all uint8 as ONNX Runtime prefers: scale threshold / 127 with zero point
///    128 (the levels of symmetric int8, shifted), or threshold / 255 with zero point 0 when the
///    table marks the value unsigned;
///  - weight W: an int8 initializer (symmetric, per output channel along the target's weight axis
///    with channel_wise_abs_max, or one scale) -> DequantizeLinear;
///  - bias b: an int32 initializer with scale s_a * s_W per channel -> DequantizeLinear.
/// With `bias_correction`, each weight is first adjusted as PaddleSlim's bias_correction_w does
/// (mean and spread of the quantization error per channel, or over the tensor with one scale)
/// before it is quantized.
/// Preserves: the graph outputs' names; numerics become those of 8-bit quantization.
/// Preconditions: float model (not already quantized), BatchNormalization folded into convs
/// (fold_batch_norm), opset >= 13 for per-channel scales, every quantized value (quantized_values) in `table`,
/// activation_bits 8 and weight_bits <= 8. Errors name the option, value or node.
QdqReport quantize_qdq(Graph& g, const ScaleTable& table, const QuantOptions& o,
                       bool bias_correction = false);

/// Checks `o` can be exported as QDQ (8-bit activations, weights of at most 8 bits) besides
/// check_quant_options; errors name the option and value. Run it before long calibration.
void check_qdq_options(const QuantOptions& o);

/// Stores `w` as `bits`-bit integers with per-channel (axis >= 0) or per-tensor abs_max scales:
/// returns {q (int8 for bits <= 8, int16 otherwise), onnx scale = abs_max / (2^(bits-1) - 1)}.
/// An all-zero channel gets scale 1. With `bias_correction`, applies bias_correction_w first.
std::pair<at::Tensor, at::Tensor> quantize_weight(const at::Tensor& w, int bits, int64_t axis,
                                                  bool bias_correction = false);

}  // namespace slim
