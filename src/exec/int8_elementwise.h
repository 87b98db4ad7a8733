#pragma once
// Element-wise loops over int8/uint8 activation levels with one per-tensor scale and zero point:
// ONNX's QuantizeLinear and DequantizeLinear, and the int8 residual Add (DQ x2 -> Add -> [Relu] ->
// Q). Each computes exactly what the ATen composition computes (the same float operations in the
// same order, division by the scale, rounding half to even), in one pass, with an AVX2 path chosen
// at run time. Buffers are dense; the callers split work across threads.
#include <cstdint>

namespace slim {

/// A dense buffer of 8-bit levels: uint8 when `u8`, else int8.
struct Levels {
  void* data;
  bool u8;
};
struct ConstLevels {
  const void* data;
  bool u8;
};

/// y[i] = float(x[i] - zp) * scale, for i in [begin, begin + n).
void dequantize_levels(ConstLevels x, float* y, int64_t begin, int64_t n, float scale, int zp);

/// y[i] = saturate(round_half_even(x[i] / scale) + zp), for i in [begin, begin + n).
void quantize_levels(const float* x, Levels y, int64_t begin, int64_t n, float scale, int zp);

/// y[i] = quantize(max(dequantize(a[i]) + dequantize(b[i]), relu ? 0 : -inf)), for i in
/// [begin, begin + n): the float simulation of DQ, DQ, Add, [Relu], Q.
void add_levels(ConstLevels a, float sa, int za, ConstLevels b, float sb, int zb, Levels y,
                float sy, int zy, bool relu, int64_t begin, int64_t n);

/// y[i] = table[x[i]] for i in [0, n): a byte table of 256 entries (AVX-512 VBMI where the CPU
/// has it).
void lookup_levels(const uint8_t* x, uint8_t* y, int64_t n, const uint8_t* table);

/// sum[i] += table[x[i]] (a float widened to double) for i in [0, n) (AVX-512 gathers where the
/// CPU has them).
void accumulate_levels(const uint8_t* x, double* sum, int64_t n, const float* table);

/// y[i] = saturate(round_half_even(table[x[i]] * gate[i] / scale) + zp) for i in [0, n): the
/// squeeze-excitation Mul of a level's float value by its channel's gate, quantized.
void scale_levels(const uint8_t* x, const float* gate, const float* table, Levels y, int64_t n,
                  float scale, int zp);

}  // namespace slim
