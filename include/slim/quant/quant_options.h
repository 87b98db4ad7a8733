#pragma once
/// Options shared by Slim's quantizers (PaddleSlim's quant config): which ops are quantized, how
/// weights and activations get their scales, and with how many bits.
#include <string>
#include <vector>

namespace slim {

/// How a weight tensor's scale is chosen.
enum class WeightQuantAlgo {
  kChannelWiseAbsMax,  ///< one scale per output channel: max |W_c| (default)
  kAbsMax,             ///< one scale for the tensor: max |W|
};

/// How quant-aware training tracks an activation's scale.
enum class ActQuantAlgo {
  kMovingAverageAbsMax,  ///< state = r*state + 1; accum = r*accum + max|x|; s = accum/state
  kAbsMax,               ///< the current batch's max |x| (frozen at its last value in eval)
  kRangeAbsMax,          ///< max over a window of the last N batch maxima
};

struct QuantOptions {
  WeightQuantAlgo weight_algo = WeightQuantAlgo::kChannelWiseAbsMax;
  ActQuantAlgo act_algo = ActQuantAlgo::kMovingAverageAbsMax;  ///< quant-aware training only
  int weight_bits = 8;  ///< 2..16 for fake quantization; 2..8 for an int8 QDQ export
  int act_bits = 8;     ///< 2..16 for fake quantization; 8 for a QDQ export
  /// Op types whose weight and input activation are quantized (PaddleSlim: conv2d,
  /// depthwise_conv2d, mul/matmul).
  std::vector<std::string> quantize_op_types{"Conv", "Gemm", "MatMul"};
  /// Nodes whose name matches this ECMAScript regex (anywhere in the name) are left in float.
  std::string not_quant_pattern;
  /// Also quantize each quantized op's output (after a Relu, Clip or LeakyRelu only it reads)
  /// when no quantized op reads it, e.g. a conv before a residual Add or a global pool. Then
  /// every quantized op is a whole int8 step for deployment runtimes: ONNX Runtime fuses
  /// DequantizeLinear -> Conv -> QuantizeLinear into QLinearConv, and without the trailing
  /// QuantizeLinear runs the conv in float, dequantizing its weight on every run. PaddleSlim
  /// records the same scales as out_threshold. Graph outputs stay float.
  bool quantize_outputs = true;
  double moving_rate = 0.9;     ///< moving_average_abs_max
  int64_t window_size = 10000;  ///< range_abs_max
};

/// Checks bits ranges, op types and the regex; errors name the option and the value.
void check_quant_options(const QuantOptions& o);

/// "channel_wise_abs_max" | "abs_max".
WeightQuantAlgo weight_quant_algo_from_string(const std::string& s);
std::string to_string(WeightQuantAlgo a);
/// "moving_average_abs_max" | "abs_max" | "range_abs_max".
ActQuantAlgo act_quant_algo_from_string(const std::string& s);
std::string to_string(ActQuantAlgo a);

/// Largest quantized magnitude of symmetric `bits`-bit quantization: 2^(bits-1) - 1.
int64_t quant_bound(int bits);

}  // namespace slim
