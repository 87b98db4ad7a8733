#pragma once
#include <string>
#include <vector>

#include "slim/ir/graph.h"
#include "slim/quant/quant_options.h"

namespace slim {

struct WeightOnlyReport {
  int64_t weights = 0;       ///< initializers stored as integers
  int64_t float_bytes = 0;   ///< their size before
  int64_t stored_bytes = 0;  ///< ... and after (levels and scales)
  std::vector<std::string> skipped;
};

/// quantize_weights: weight-only (dynamic) quantization, no data needed. The weight of every
/// quantization target (quant_targets.h; activations stay float) is stored as `bits`-bit
/// integers with per-output-channel abs_max scales (o.weight_algo), scale = max|W_c| / (2^(bits-1)
/// - 1): bits <= 8 as int8 -> DequantizeLinear (per-axis), bits 9..16 as int16 -> Cast -> Mul by
/// the broadcast scales (valid at any opset; ONNX's int16 DequantizeLinear needs opset 21).
/// Preserves: graph outputs; weights change by at most half a quantization step.
/// Preconditions: float model, bits in 2..16. Errors: nothing to quantize, already quantized.
WeightOnlyReport quantize_weights(Graph& g, int bits, const QuantOptions& o = {});

}  // namespace slim
