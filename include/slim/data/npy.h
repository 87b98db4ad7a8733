#pragma once
/// NumPy .npy files (format versions 1-3), little-endian, C order: float32/64, int8/16/32/64,
/// uint8 and bool. Used by `slim run` and by test fixtures shared with PyTorch.
#include <string>

#include <ATen/ATen.h>

namespace slim {

/// Reads a .npy file; errors name the file and what is wrong (magic, dtype, Fortran order, size).
at::Tensor npy_load(const std::string& path);
/// Writes a tensor as .npy (version 1.0) atomically.
void npy_save(const at::Tensor& t, const std::string& path);

}  // namespace slim
