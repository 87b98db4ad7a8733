#pragma once
/// Channel dependency analysis: which conv filters must be cut together, and every weight axis,
/// attribute and value their channels reach.
///
/// Each Conv with an initializer weight (and group == 1) is a *source* of channels. Channels flow
/// through BatchNormalization, activations, pools, Pad, Resize, Dropout, depthwise convs (whose
/// filters and `group` follow their input), Concat/Split on the channel axis (offsets), and
/// Flatten/Reshape into Gemm/MatMul (rows in blocks of H*W). Element-wise ops (Add, Sub, Mul,
/// Div, ..., squeeze-excitation) tie the sources of their inputs into one group: the same channel
/// indices are cut from all of them. Per-channel initializers of element-wise ops and PRelu are
/// cut along. Anything else a channel reaches (channel shuffle, a graph output, an op Slim cannot
/// follow, grouped convs) makes the group unprunable, with the reason.
#include <map>
#include <string>
#include <vector>

#include "slim/ir/graph.h"

namespace slim {

/// How the positions along one axis of a value (or weight) map to group channels: consecutive
/// segments, each a range of one group's channels, every channel `block` positions wide (a
/// flattened C x H x W map has block H*W).
struct ChannelMap {
  struct Segment {
    int group = -1;
    int64_t offset = 0;  ///< first group channel of the segment
    int64_t length = 0;  ///< channels in the segment
  };
  std::vector<Segment> segments;
  int64_t block = 1;

  /// Number of positions on the axis: block * sum of segment lengths.
  int64_t positions() const;
};

/// One group of coupled channels.
struct ChannelGroup {
  int id = -1;
  int64_t channels = 0;
  /// Conv weights whose filters (axis 0) are the group's channels, in graph order. The first is
  /// the default master whose importance decides for the whole group.
  std::vector<std::string> sources;
  /// Nodes producing those weights' outputs, same order.
  std::vector<std::string> source_nodes;
  bool prunable = true;
  std::string reason;  ///< why the group cannot be pruned (empty when prunable)
};

/// An initializer axis that must be sliced when groups are pruned.
struct ChannelCut {
  std::string initializer;
  int64_t axis = 0;
  ChannelMap map;
};

/// A node attribute or constant input whose value depends on channel counts.
struct ChannelAttr {
  enum class Kind {
    kConvGroup,      ///< depthwise Conv: `group` = channels of its input
    kSplitSizes,     ///< Split on the channel axis: sizes = kept channels of each output
    kReshapeFlatten  ///< Reshape acting as Flatten(axis=1): shape becomes [0, -1]
  };
  Kind kind;
  std::string node;
  std::vector<ChannelMap> maps;  ///< conv group: input map; split: one map per output
};

struct ChannelAnalysis {
  std::vector<ChannelGroup> groups;
  std::vector<ChannelCut> cuts;  ///< includes the sources' weights (axis 0) and biases
  std::vector<ChannelAttr> attrs;
  /// Source weight name -> group id.
  std::map<std::string, int> group_of_source;

  /// Group of a conv weight the user named. Errors name the param and say why it is not
  /// prunable: unknown name, not a conv weight, a depthwise weight (names its producer), or a
  /// weight whose group is unprunable (with the reason).
  const ChannelGroup& group_of(const Graph& g, const std::string& param) const;
};

/// Analyses `g`. Precondition: shapes inferred (infer_shapes); the graph is not modified.
ChannelAnalysis analyze_channel_groups(const Graph& g);

}  // namespace slim
