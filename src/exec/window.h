#pragma once
// Internal to src/exec: the resolved window of a Conv or pooling node.
#include <vector>

#include "slim/exec/kernel.h"

namespace slim {

/// Resolved spatial geometry of a Conv/pool node: explicit begin/end pads per spatial dim.
struct Window {
  std::vector<int64_t> kernel, strides, dilations, pad_begin, pad_end;
  bool symmetric() const { return pad_begin == pad_end; }
  /// ATen's pooling takes only symmetric pads of at most half the kernel; others are explicit.
  bool aten_pool_padding() const {
    if (!symmetric()) return false;
    for (size_t d = 0; d < kernel.size(); ++d)
      if (pad_begin[d] * 2 > kernel[d]) return false;
    return true;
  }
};

/// Resolves kernel, strides, dilations and pads (explicit or auto_pad) of node `n` for input `x`;
/// errors name the node.
Window resolve_window(const Node& n, const at::Tensor& x, std::vector<int64_t> kernel);

}  // namespace slim
