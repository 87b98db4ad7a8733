#pragma once
#include <string>
#include <vector>

#include "slim/ir/graph.h"

namespace slim {

struct EmbeddingOptions {
  /// > 0: clip the table to [-threshold, threshold] before quantizing. 0: the table's max |W|, or
  /// its 99.99th percentile of |W| when max |W| >= 1 (PaddleSlim's default for large outliers).
  double threshold = 0;
  std::string pattern;  ///< only Gather nodes whose name matches this regex ("" = all)
};

struct EmbeddingReport {
  int64_t tables = 0;
  int64_t float_bytes = 0, stored_bytes = 0;
  std::vector<std::string> thresholds;  ///< "table: threshold" per quantized table
};

/// quantize_embedding: every Gather whose data (input 0) is a 2-D float initializer (an
/// embedding table) reads an int8 table instead, q = round(clip(W, -s, s) / s * 127), and its
/// output is dequantized with the per-table scale s / 127: Gather(int8 table, ids) ->
/// DequantizeLinear, so only the gathered rows are converted. The Gather's output name is kept.
/// Preserves: graph outputs; table entries within s / 254 (and clipped values to s).
/// Errors: no such Gather, threshold < 0, a table read by other ops too.
EmbeddingReport quantize_embedding(Graph& g, const EmbeddingOptions& o = {});

}  // namespace slim
