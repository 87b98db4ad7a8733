#pragma once
#include "slim/ir/graph.h"
#include "slim/quant/quant_options.h"
#include "slim/quant/scale_table.h"

namespace slim {

/// insert_fake_quant: for each quantization target (quant_targets.h), routes its weight and its
/// input activation through a FakeQuant node (fake_quant.h) configured from `o`: weights
/// per-channel (or per-tensor) abs_max, activations by o.act_algo with a state initializer that
/// training updates (not trainable). Activations >= 0 by construction use unsigned levels, as
/// the QDQ export stores them (uint8).
/// Preserves: graph outputs' names; numerics become those of quantization (straight-through
/// gradients). Preconditions: float, not yet quantized. Returns the number of targets.
int insert_fake_quant(Graph& g, const QuantOptions& o);

/// The activation thresholds the FakeQuant nodes hold now, as a scale table (algo "qat").
ScaleTable fake_quant_scales(const Graph& g);

/// remove_fake_quant: drops every FakeQuant node (its readers read its input again) and their
/// state initializers. Returns the number removed.
int remove_fake_quant(Graph& g);

}  // namespace slim
