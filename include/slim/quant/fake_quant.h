#pragma once
/// Symmetric fake quantization as PaddleSlim computes it. With threshold s and b = 2^(bits-1) - 1
/// levels, q = round(clip(x, -s, s) * b / s) and the dequantized value is q * s / b. Slim
/// evaluates it as ONNX QuantizeLinear does, q = clamp(round(x / (s / b)), -b, b) with rounding
/// half to even, so a fake-quantized model and its QDQ export compute the same levels.
/// Unsigned mode (for activations known to be >= 0, exported as uint8) uses b = 2^bits - 1
/// levels on [0, s].
#include <ATen/ATen.h>

namespace slim {

/// max |w| per slice along `axis` (shape [w.size(axis)]), or over the whole tensor if axis < 0
/// (shape []).
at::Tensor abs_max(const at::Tensor& w, int64_t axis = -1);

/// Number of positive levels: 2^(bits-1) - 1 signed, 2^bits - 1 unsigned.
int64_t quant_levels(int bits, bool is_unsigned);

/// Integer levels (as float) of `x` for threshold `s`: a scalar, or with axis >= 0 one threshold
/// per slice along `axis`. A zero threshold maps its slice to 0.
at::Tensor quantize_symmetric(const at::Tensor& x, const at::Tensor& s, int bits,
                              int64_t axis = -1, bool is_unsigned = false);

/// Dequantized fake quantization of `x` (see above), no gradient.
at::Tensor quant_dequant(const at::Tensor& x, const at::Tensor& s, int bits, int64_t axis = -1,
                         bool is_unsigned = false);

/// quant_dequant with the straight-through estimator: the forward value is quant_dequant(x), the
/// gradient with respect to x is passed through unchanged (PaddleSlim's backward).
at::Tensor fake_quant_ste(const at::Tensor& x, const at::Tensor& s, int bits, int64_t axis = -1,
                          bool is_unsigned = false);

}  // namespace slim

namespace slim {
struct KernelContext;

/// Executor kernel of Slim's `FakeQuant` node, which quant-aware training inserts
/// (insert_fake_quant.h) and the QDQ export removes. Attributes: target "weight" | "activation",
/// algo (weights: channel_wise_abs_max | abs_max; activations: moving_average_abs_max | abs_max |
/// range_abs_max), bits, axis (weights; -1 per tensor), unsigned (activations), moving_rate,
/// window_size. Activations read a float state initializer (input 1): [scale, state, accum] for
/// moving_average_abs_max, [scale] for abs_max, [scale, count, last window_size maxima...] for
/// range_abs_max; training updates it in place, inference uses its scale as it is.
void fake_quant_kernel(KernelContext& c);
}  // namespace slim
