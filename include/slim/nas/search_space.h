#pragma once
/// NAS search spaces: PaddleSlim's SANAS spaces (mobilenet_v2, mobilenet_v1, resnet) with their
/// candidate lists, range tables and initial tokens (REFERENCE.md "NAS"), decoded into the zoo's
/// architecture structs (slim/zoo/arch.h) and built as ONNX-ready Graphs for any input shape
/// and class count.
///
/// Differences from PaddleSlim, each a fix: every candidate ends in a global average pool and
/// an fc to the classes (PaddleSlim's spaces return feature maps); mobilenet_v1 has ReLU after
/// every conv (PaddleSlim's has no activation at all); mobilenet_v2 has no 1x1 expand conv in a
/// unit of expansion 1 (as torchvision and the paper; PaddleSlim builds one), so its initial
/// tokens are torchvision's MobileNetV2; resnet keeps a ReLU after each residual Add (PaddleSlim
/// 2.x dropped it).
///
/// Small inputs: every window is padded "SAME", so no map shrinks below 1x1 and every in-range
/// token vector builds at any input of at least 1x1. A stride-2 position whose input map is
/// already 1x1 runs at stride 1 (the same 1x1 output: the rule only keeps strides that do
/// nothing out of the exported graph).
#include <memory>
#include <string>
#include <vector>

#include "slim/ir/graph.h"
#include "slim/nas/controller.h"
#include "slim/zoo/zoo.h"

namespace slim {

class SearchSpace {
 public:
  virtual ~SearchSpace() = default;
  virtual std::string name() const = 0;
  /// One line: what the tokens choose.
  virtual std::string describe() const = 0;
  virtual Tokens init_tokens() const = 0;
  /// Token i takes values in [0, range_table()[i]).
  virtual Tokens range_table() const = 0;
  /// The candidate `tokens` for options.input (C,H,W) and options.classes, weights drawn from
  /// options.seed (options.scale must be 1). Errors name the space, the token position and
  /// value, or the input.
  virtual Graph build(const Tokens& tokens, const ZooOptions& options) const = 0;
  /// Errors unless `tokens` has one in-range value per position (naming the first that is not).
  void check_tokens(const Tokens& tokens) const;
  /// Token vectors whose networks together contain every layer configuration (input and output
  /// channels, kernel, stride, map size) that any vector of the space builds at a given input:
  /// for each group of positions a layer depends on, every combination of their values, the
  /// other positions at their initial values. What `slim latency-table --space` measures.
  std::vector<Tokens> cover_tokens() const;

 protected:
  /// The position groups cover_tokens() enumerates, each with positions set to a fixed value in
  /// its vectors (e.g. a repeat count of 2, so that the repeated units' configuration appears).
  struct CoverGroup {
    std::vector<size_t> positions;
    std::vector<std::pair<size_t, int64_t>> fixed;
  };
  virtual std::vector<CoverGroup> cover_groups() const = 0;
};

/// "mobilenet_v2", "mobilenet_v1" or "resnet"; others are errors listing the names.
std::unique_ptr<SearchSpace> search_space_make(const std::string& name);
std::vector<std::string> search_space_names();

}  // namespace slim
