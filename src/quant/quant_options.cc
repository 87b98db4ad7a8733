#include "slim/quant/quant_options.h"

#include <regex>

#include "slim/ir/error.h"

namespace slim {

void check_quant_options(const QuantOptions& o) {
  SLIM_CHECK(o.weight_bits >= 2 && o.weight_bits <= 16, "weight_bits must be in 2..16, got ",
             o.weight_bits);
  SLIM_CHECK(o.act_bits >= 2 && o.act_bits <= 16, "activation_bits must be in 2..16, got ",
             o.act_bits);
  SLIM_CHECK(!o.quantize_op_types.empty(), "quantize_op_types is empty: nothing would be quantized");
  for (const auto& t : o.quantize_op_types)
    SLIM_CHECK(t == "Conv" || t == "Gemm" || t == "MatMul", "quantize_op_types: '", t,
               "' is not supported (supported: Conv, Gemm, MatMul)");
  SLIM_CHECK(o.moving_rate > 0 && o.moving_rate < 1, "moving_rate must be in (0, 1), got ",
             o.moving_rate);
  SLIM_CHECK(o.window_size >= 1, "window_size must be >= 1, got ", o.window_size);
  try {
    std::regex re(o.not_quant_pattern);
  } catch (const std::regex_error& e) {
    SLIM_FAIL("not_quant_pattern '", o.not_quant_pattern, "' is not a valid regex: ", e.what());
  }
}

WeightQuantAlgo weight_quant_algo_from_string(const std::string& s) {
  if (s == "channel_wise_abs_max") return WeightQuantAlgo::kChannelWiseAbsMax;
  if (s == "abs_max") return WeightQuantAlgo::kAbsMax;
  SLIM_FAIL("weight quantize type '", s, "' is not one of channel_wise_abs_max, abs_max");
}

std::string to_string(WeightQuantAlgo a) {
  return a == WeightQuantAlgo::kAbsMax ? "abs_max" : "channel_wise_abs_max";
}

ActQuantAlgo act_quant_algo_from_string(const std::string& s) {
  if (s == "moving_average_abs_max") return ActQuantAlgo::kMovingAverageAbsMax;
  if (s == "abs_max") return ActQuantAlgo::kAbsMax;
  if (s == "range_abs_max") return ActQuantAlgo::kRangeAbsMax;
  SLIM_FAIL("activation quantize type '", s,
            "' is not one of moving_average_abs_max, abs_max, range_abs_max");
}

std::string to_string(ActQuantAlgo a) {
  switch (a) {
    case ActQuantAlgo::kAbsMax:
      return "abs_max";
    case ActQuantAlgo::kRangeAbsMax:
      return "range_abs_max";
    default:
      return "moving_average_abs_max";
  }
}

int64_t quant_bound(int bits) { return (int64_t{1} << (bits - 1)) - 1; }

}  // namespace slim
