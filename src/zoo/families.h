#pragma once
// Internal to the zoo: the model families' entry points (the registry in zoo.cc is the only
// caller).
#include "slim/zoo/builder.h"

namespace slim::zoo_detail {

// The families, one per source file. Options are validated by zoo_build before these run.
Graph zoo_lenet(const ZooOptions& options);
Graph zoo_mobilenet_v1(const ZooOptions& options);
Graph zoo_mobilenet_v2(const ZooOptions& options);
/// depth 34 (basic blocks) or 50 (bottlenecks), both with stages [3, 4, 6, 3].
Graph zoo_resnet(const ZooOptions& options, int depth);

}  // namespace slim::zoo_detail
