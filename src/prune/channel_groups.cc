#include "slim/prune/channel_groups.h"

#include <algorithm>
#include <numeric>
#include <set>

#include "slim/exec/kernel.h"

namespace slim {

int64_t ChannelMap::positions() const {
  int64_t n = 0;
  for (const auto& s : segments) n += s.length;
  return n * block;
}

namespace {

/// Ops whose output has the input's channels at the same axis, element by element.
const std::set<std::string> kUnaryOps = {
    "Relu",      "LeakyRelu", "Elu",      "Selu",     "Celu",  "Sigmoid",    "HardSigmoid",
    "HardSwish", "Tanh",      "Softplus", "Softsign", "Clip",  "Identity",   "Dropout",
    "Abs",       "Neg",       "Exp",      "Log",      "Sqrt",  "Erf",        "Gelu",
    "Mish",      "Cast",      "Floor",    "Ceil",     "Round", "Reciprocal", "ThresholdedRelu",
    "Shrink",    "Sign",      "Sin",      "Cos"};

/// Ops that keep axis 1 (channels) and change only spatial dims.
const std::set<std::string> kSpatialOps = {"MaxPool",           "AveragePool",   "LpPool",
                                           "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"};

/// Element-wise ops with broadcasting: channel maps of their inputs are tied together.
const std::set<std::string> kElementwiseOps = {"Add", "Sub", "Mul",  "Div",   "Pow",  "Max",
                                               "Min", "Sum", "Mean", "PRelu", "Where"};

const std::set<std::string> kReduceOps = {"ReduceMean", "ReduceMax",       "ReduceMin",
                                          "ReduceSum",  "ReduceL1",        "ReduceL2",
                                          "ReduceProd", "ReduceSumSquare", "ReduceLogSumExp"};

/// A value whose positions along `axis` are group channels.
struct Tracked {
  int64_t axis = 1;
  ChannelMap map;
};

class Analyzer {
 public:
  explicit Analyzer(const Graph& g) : g_(g) {
    for (const auto& n : g.nodes)
      for (const auto& in : n.inputs)
        if (!in.empty()) ++uses_[in];
  }

  ChannelAnalysis run() {
    for (const auto& n : g_.nodes) visit(n);
    for (const auto& o : g_.outputs) {
      auto it = tracked_.find(o.name);
      if (it != tracked_.end())
        bad(it->second.map, "its channels reach graph output '" + o.name + "'");
    }
    return finish();
  }

 private:
  // ---- groups (union-find over source ids) ---------------------------------------------
  int find(int x) {
    while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
    return x;
  }
  void unite(int a, int b) {
    a = find(a);
    b = find(b);
    if (a == b) return;
    if (b < a) std::swap(a, b);
    parent_[b] = a;
    if (reason_[a].empty()) reason_[a] = reason_[b];
  }
  int new_group(int64_t channels, const std::string& weight, const std::string& node) {
    int id = static_cast<int>(parent_.size());
    parent_.push_back(id);
    channels_.push_back(channels);
    weight_.push_back(weight);
    node_.push_back(node);
    reason_.emplace_back();
    return id;
  }
  void bad(int group, const std::string& why) {
    if (group < 0) return;
    int r = find(group);
    if (reason_[r].empty()) reason_[r] = why;
  }
  void bad(const ChannelMap& m, const std::string& why) {
    for (const auto& s : m.segments) bad(s.group, why);
  }
  /// Every tracked input of `n` becomes unprunable.
  void refuse(const Node& n, const std::string& why) {
    for (const auto& in : n.inputs) {
      auto it = tracked_.find(in);
      if (it != tracked_.end()) bad(it->second.map, n.label() + " " + why);
    }
  }

  const Tracked* tracked(const std::string& v) const {
    auto it = tracked_.find(v);
    return it == tracked_.end() ? nullptr : &it->second;
  }
  std::vector<int64_t> shape(const std::string& v) const {
    auto s = g_.shape_of(v);
    return s ? *s : std::vector<int64_t>{};
  }
  bool own_initializer(const std::string& v) const {
    auto it = uses_.find(v);
    return g_.is_initializer(v) && it != uses_.end() && it->second == 1;
  }
  void cut(const std::string& init, int64_t axis, const ChannelMap& m) {
    cuts_.push_back({init, axis, m});
  }
  void pass(const Node& n, const Tracked& t, int64_t axis) {
    if (n.outputs.empty() || n.outputs[0].empty()) return;
    Tracked o = t;
    o.axis = axis;
    tracked_[n.outputs[0]] = o;
  }

  // ---- visiting ------------------------------------------------------------------------
  void visit(const Node& n) {
    bool any = false;
    for (const auto& in : n.inputs) any = any || tracked(in);
    const std::string& op = n.op_type;
    if (!n.domain.empty() && n.domain != "ai.onnx") {
      if (any) refuse(n, "is a custom-domain op Slim cannot follow");
      return;
    }
    if (op == "Conv") return conv(n);
    if (!any) return;
    if (op == "ConvTranspose") return conv_transpose(n);
    if (kElementwiseOps.count(op)) return elementwise(n);
    if (op == "Concat") return concat(n);
    if (op == "Gemm") return gemm(n);
    if (op == "MatMul") return matmul(n);
    if (op == "Shape" || op == "Size") return;  // reads the shape only; it follows the pruning
    for (size_t i = 1; i < n.inputs.size(); ++i)
      if (tracked(n.inputs[i])) return refuse(n, "takes channels as a parameter input");
    if (!tracked(n.inputs[0])) return;
    const Tracked& x = *tracked(n.inputs[0]);
    if (kUnaryOps.count(op)) return pass(n, x, x.axis);
    if (kSpatialOps.count(op)) {
      if (x.axis != 1 || x.map.block != 1) return refuse(n, "pools across channels");
      return pass(n, x, 1);
    }
    if (op == "BatchNormalization" || op == "InstanceNormalization") return norm(n, x);
    if (op == "Resize" || op == "Upsample") return resize(n, x);
    if (op == "Pad") return pad(n, x);
    if (kReduceOps.count(op)) return reduce(n, x);
    if (op == "Flatten") return flatten(n, x);
    if (op == "Reshape") return reshape(n, x);
    if (op == "Squeeze" || op == "Unsqueeze") return squeeze(n, x);
    if (op == "Transpose") return transpose(n, x);
    if (op == "Softmax" || op == "LogSoftmax") {
      int64_t rank = static_cast<int64_t>(shape(n.inputs[0]).size());
      int64_t axis = normalize_axis(n, n.i("axis", g_.opset >= 13 ? -1 : 1), rank);
      if (axis == x.axis || (g_.opset < 13 && axis < x.axis))
        return refuse(n, "normalises across channels");
      return pass(n, x, x.axis);
    }
    if (op == "Split") return split(n, x);
    refuse(n, "is an op Slim's channel analysis cannot follow");
  }

  void conv(const Node& n) {
    const Tracked* x = tracked(n.inputs[0]);
    const std::string& w = n.input(1);
    if (!g_.is_initializer(w)) {
      if (x) refuse(n, "has a computed weight");
      return;
    }
    const at::Tensor& wt = g_.initializers.at(w);
    const int64_t group = n.i("group", 1);
    const int64_t cout = wt.size(0), cin = wt.size(1) * group;
    const std::string& b = n.input(2);
    const bool shared = !own_initializer(w) || (!b.empty() && !own_initializer(b));
    if (tracked(w) || (!b.empty() && tracked(b))) return refuse(n, "takes channels as a weight");
    if (x && (x->axis != 1 || x->map.block != 1))
      return refuse(n, "reads channels on another axis");
    if (group > 1 && group == cin && cout == cin) {
      // Depthwise: filter c reads input channel c, so filters and `group` follow the input.
      if (!x) return;
      if (shared) return refuse(n, "shares its weight with another node");
      cut(w, 0, x->map);
      if (!b.empty()) cut(b, 0, x->map);
      attrs_.push_back({ChannelAttr::Kind::kConvGroup, n.name, {x->map}});
      return pass(n, *x, 1);
    }
    if (group > 1) {
      if (x) refuse(n, "is a grouped conv (group=" + std::to_string(group) + ")");
      return;  // its own filters stay: cutting whole groups is not supported
    }
    if (shared) {
      if (x) refuse(n, "shares its weight with another node");
      return;
    }
    if (x) cut(w, 1, x->map);
    int id = new_group(cout, w, n.name);
    ChannelMap m;
    m.segments.push_back({id, 0, cout});
    cut(w, 0, m);
    if (!b.empty()) cut(b, 0, m);
    Tracked o;
    o.axis = 1;
    o.map = m;
    tracked_[n.outputs[0]] = o;
  }

  /// ConvTranspose reading pruned channels: its weight [C_in, C_out/group, k...] loses rows along
  /// axis 0. Its own output channels are not a group (they are never cut), so nothing is tracked
  /// past it.
  void conv_transpose(const Node& n) {
    const Tracked* x = tracked(n.inputs[0]);
    const std::string& w = n.input(1);
    if (!x) return refuse(n, "takes channels as a parameter input");
    if (!g_.is_initializer(w)) return refuse(n, "has a computed weight");
    if (tracked(w) || (!n.input(2).empty() && tracked(n.input(2))))
      return refuse(n, "takes channels as a weight");
    if (x->axis != 1 || x->map.block != 1) return refuse(n, "reads channels on another axis");
    if (n.i("group", 1) != 1) return refuse(n, "is a grouped transposed conv");
    if (!own_initializer(w)) return refuse(n, "shares its weight with another node");
    cut(w, 0, x->map);
  }

  void norm(const Node& n, const Tracked& x) {
    if (x.axis != 1 || x.map.block != 1) return refuse(n, "normalises another axis");
    for (size_t i = 1; i < n.inputs.size() && i <= 4; ++i) {
      const std::string& p = n.inputs[i];
      if (p.empty()) continue;
      if (!own_initializer(p)) return refuse(n, "has a computed or shared parameter '" + p + "'");
      cut(p, 0, x.map);
    }
    pass(n, x, 1);
  }

  void resize(const Node& n, const Tracked& x) {
    // `sizes` (input 3) would name the channel count; scales are per axis and keep it.
    if (!n.input(3).empty()) return refuse(n, "has explicit output sizes");
    pass(n, x, x.axis);
  }

  void pad(const Node& n, const Tracked& x) {
    std::vector<int64_t> pads = n.ints("pads");
    if (!n.input(1).empty()) {
      if (!g_.is_initializer(n.input(1))) return refuse(n, "has computed pads");
      pads = to_int_vector(g_.initializers.at(n.input(1)));
    }
    const size_t rank = pads.size() / 2;
    if (static_cast<size_t>(x.axis) < rank && (pads[x.axis] != 0 || pads[x.axis + rank] != 0))
      return refuse(n, "pads the channel axis");
    pass(n, x, x.axis);
  }

  void reduce(const Node& n, const Tracked& x) {
    const int64_t rank = static_cast<int64_t>(shape(n.inputs[0]).size());
    std::vector<int64_t> axes = n.ints("axes");
    if (!n.input(1).empty()) {
      if (!g_.is_initializer(n.input(1))) return refuse(n, "has computed axes");
      axes = to_int_vector(g_.initializers.at(n.input(1)));
    }
    if (axes.empty()) return refuse(n, "reduces over all axes");
    int64_t before = 0;
    for (auto a : axes) {
      a = normalize_axis(n, a, rank);
      if (a == x.axis) return refuse(n, "reduces over channels");
      if (a < x.axis) ++before;
    }
    pass(n, x, n.i("keepdims", 1) ? x.axis : x.axis - before);
  }

  void flatten(const Node& n, const Tracked& x) {
    auto s = shape(n.inputs[0]);
    const int64_t axis = normalize_axis(n, n.i("axis", 1), static_cast<int64_t>(s.size()));
    if (axis != x.axis || axis != 1) return refuse(n, "merges channels with the batch");
    Tracked o = x;
    for (size_t d = 2; d < s.size(); ++d) {
      if (s[d] < 0) return refuse(n, "flattens a map of unknown size");
      o.map.block *= s[d];
    }
    tracked_[n.outputs[0]] = o;
  }

  void reshape(const Node& n, const Tracked& x) {
    auto in = shape(n.inputs[0]), out = shape(n.outputs[0]);
    if (in.size() < 2 || out.size() != 2 || x.axis != 1)
      return refuse(n, "moves channels (e.g. a channel shuffle)");
    // Only Flatten(axis=1) in disguise: [N, C, ...] -> [N, C*...].
    int64_t inner = 1;
    for (size_t d = 2; d < in.size(); ++d) {
      if (in[d] < 0) return refuse(n, "flattens a map of unknown size");
      inner *= in[d];
    }
    if (out[1] != in[1] * inner || (in[0] >= 0 && out[0] != in[0]))
      return refuse(n, "moves channels (e.g. a channel shuffle)");
    if (n.i("allowzero", 0) != 0) return refuse(n, "has allowzero=1");
    Tracked o = x;
    o.map.block *= inner;
    tracked_[n.outputs[0]] = o;
    attrs_.push_back({ChannelAttr::Kind::kReshapeFlatten, n.name, {}});
  }

  void squeeze(const Node& n, const Tracked& x) {
    const bool sq = n.op_type == "Squeeze";
    auto in = shape(n.inputs[0]), out = shape(n.outputs[0]);
    std::vector<int64_t> axes = n.ints("axes");
    if (!n.input(1).empty()) {
      if (!g_.is_initializer(n.input(1))) return refuse(n, "has computed axes");
      axes = to_int_vector(g_.initializers.at(n.input(1)));
    }
    const int64_t rank = static_cast<int64_t>(sq ? in.size() : out.size());
    int64_t axis = x.axis;
    if (sq) {
      if (axes.empty()) {  // all size-1 dims
        for (size_t d = 0; d < in.size(); ++d)
          if (in[d] == 1) axes.push_back(static_cast<int64_t>(d));
      }
      for (auto a : axes) {
        a = normalize_axis(n, a, rank);
        if (a == x.axis) return refuse(n, "squeezes the channel axis");
        if (a < x.axis) --axis;
      }
    } else {
      std::vector<int64_t> norm;
      for (auto a : axes) norm.push_back(normalize_axis(n, a, rank));
      std::sort(norm.begin(), norm.end());
      for (auto a : norm)
        if (a <= axis) ++axis;
    }
    pass(n, x, axis);
  }

  void transpose(const Node& n, const Tracked& x) {
    auto perm = n.ints("perm");
    const int64_t rank = static_cast<int64_t>(shape(n.inputs[0]).size());
    if (perm.empty())
      for (int64_t d = rank - 1; d >= 0; --d) perm.push_back(d);
    if (x.map.block != 1) return refuse(n, "transposes a flattened map");
    for (size_t j = 0; j < perm.size(); ++j)
      if (perm[j] == x.axis) return pass(n, x, static_cast<int64_t>(j));
    refuse(n, "has an invalid perm");
  }

  void gemm(const Node& n) {
    const Tracked* a = tracked(n.inputs[0]);
    if (!a || tracked(n.input(1)) || tracked(n.input(2)))
      return refuse(n, "takes channels as its weight or bias");
    const int64_t trans_a = n.i("transA", 0), trans_b = n.i("transB", 0);
    if (a->axis != (trans_a ? 0 : 1)) return refuse(n, "reads channels as rows of A");
    const std::string& b = n.input(1);
    if (!own_initializer(b)) return refuse(n, "has a computed or shared weight");
    cut(b, trans_b ? 1 : 0, a->map);
  }

  void matmul(const Node& n) {
    const Tracked* a = tracked(n.inputs[0]);
    const int64_t rank = static_cast<int64_t>(shape(n.inputs[0]).size());
    if (!a || tracked(n.input(1)) || a->axis != rank - 1)
      return refuse(n, "takes channels on an axis other than A's last");
    const std::string& b = n.input(1);
    if (!own_initializer(b) || g_.initializers.at(b).dim() != 2)
      return refuse(n, "has a computed, shared or batched weight");
    cut(b, 0, a->map);
  }

  void concat(const Node& n) {
    auto out = shape(n.outputs[0]);
    const int64_t rank = static_cast<int64_t>(out.size());
    const int64_t axis = normalize_axis(n, n.i("axis"), rank);
    Tracked o;
    o.axis = axis;
    for (const auto& in : n.inputs) {
      const Tracked* t = tracked(in);
      if (t && (t->axis != axis || t->map.block != 1))
        return refuse(n, "concatenates along an axis that is not the channel axis");
      if (t) {
        o.map.segments.insert(o.map.segments.end(), t->map.segments.begin(), t->map.segments.end());
      } else {
        auto s = shape(in);
        if (static_cast<int64_t>(s.size()) != rank || s[axis] < 0)
          return refuse(n, "concatenates a value of unknown size");
        o.map.segments.push_back({-1, 0, s[axis]});  // fixed channels, never cut
      }
    }
    tracked_[n.outputs[0]] = o;
  }

  void split(const Node& n, const Tracked& x) {
    const int64_t rank = static_cast<int64_t>(shape(n.inputs[0]).size());
    const int64_t axis = normalize_axis(n, n.i("axis", 0), rank);
    if (axis != x.axis) {
      for (const auto& o : n.outputs)
        if (!o.empty()) tracked_[o] = x;
      return;
    }
    if (x.map.block != 1) return refuse(n, "splits a flattened map");
    if (!n.input(1).empty() && !g_.is_initializer(n.input(1)))
      return refuse(n, "has computed split sizes");
    std::vector<ChannelMap> maps;
    int64_t pos = 0;
    for (const auto& o : n.outputs) {
      auto s = shape(o);
      if (static_cast<int64_t>(s.size()) != rank || s[axis] < 0)
        return refuse(n, "has an output of unknown size");
      maps.push_back(slice(x.map, pos, s[axis]));
      pos += s[axis];
    }
    for (size_t i = 0; i < n.outputs.size(); ++i) {
      Tracked t;
      t.axis = axis;
      t.map = maps[i];
      tracked_[n.outputs[i]] = t;
    }
    attrs_.push_back({ChannelAttr::Kind::kSplitSizes, n.name, maps});
  }

  /// Channels [start, start + len) of a block-1 map.
  static ChannelMap slice(const ChannelMap& m, int64_t start, int64_t len) {
    ChannelMap r;
    int64_t pos = 0;
    for (const auto& s : m.segments) {
      const int64_t lo = std::max(pos, start), hi = std::min(pos + s.length, start + len);
      if (lo < hi) r.segments.push_back({s.group, s.offset + (lo - pos), hi - lo});
      pos += s.length;
    }
    return r;
  }

  /// Ties two maps of equal length channel by channel. Returns false when they do not line up
  /// as whole groups (then the caller refuses).
  bool tie(const ChannelMap& a, const ChannelMap& b) {
    if (a.block != b.block || a.segments.size() != b.segments.size()) return false;
    for (size_t i = 0; i < a.segments.size(); ++i) {
      const auto& sa = a.segments[i];
      const auto& sb = b.segments[i];
      if (sa.length != sb.length || sa.offset != sb.offset) return false;
      if (sa.group < 0 || sb.group < 0) {
        if (sa.group != sb.group) return false;  // a prunable channel tied to a fixed one
        continue;
      }
      const bool whole = sa.offset == 0 && sa.length == channels_[find(sa.group)] &&
                         sb.length == channels_[find(sb.group)];
      if (!whole && find(sa.group) != find(sb.group)) return false;
      unite(sa.group, sb.group);
    }
    return true;
  }

  void elementwise(const Node& n) {
    auto out = shape(n.outputs[0]);
    const int64_t rank = static_cast<int64_t>(out.size());
    // The output axis every tracked input agrees on.
    const Tracked* first = nullptr;
    int64_t axis = -1;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const Tracked* t = tracked(n.inputs[i]);
      if (!t) continue;
      const int64_t a = t->axis + rank - static_cast<int64_t>(shape(n.inputs[i]).size());
      if (first && a != axis) return refuse(n, "combines channels on different axes");
      if (!first) first = t, axis = a;
    }
    if (!first) return;
    const int64_t positions = first->map.positions();
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const std::string& in = n.inputs[i];
      if (in.empty()) continue;
      if (const Tracked* t = tracked(in)) {
        if (t != first && !tie(first->map, t->map))
          return refuse(n, "combines channel ranges that do not line up");
        continue;
      }
      auto known = g_.shape_of(in);
      if (!known) return refuse(n, "combines channels with '" + in + "' of unknown shape");
      const auto& s = *known;
      const int64_t a = axis - (rank - static_cast<int64_t>(s.size()));
      if (a < 0 || s[a] == 1) continue;  // broadcast along channels
      if (s[a] != positions)
        return refuse(n, "broadcasts an input of unexpected size " + std::to_string(s[a]));
      if (!own_initializer(in))
        return refuse(n, "combines channels with a computed or shared value '" + in + "'");
      cut(in, a, first->map);
    }
    Tracked o = *first;
    o.axis = axis;
    tracked_[n.outputs[0]] = o;
  }

  // ---- result --------------------------------------------------------------------------
  ChannelAnalysis finish() {
    ChannelAnalysis r;
    std::map<int, int> final_id;  // root -> index in r.groups
    for (int i = 0; i < static_cast<int>(parent_.size()); ++i) {
      const int root = find(i);
      auto it = final_id.find(root);
      if (it == final_id.end()) {
        it = final_id.emplace(root, static_cast<int>(r.groups.size())).first;
        ChannelGroup grp;
        grp.id = it->second;
        grp.channels = channels_[root];
        grp.reason = reason_[root];
        grp.prunable = grp.reason.empty();
        r.groups.push_back(grp);
      }
      auto& grp = r.groups[it->second];
      SLIM_ASSERT(grp.channels == channels_[i], "tied groups differ in channels");
      grp.sources.push_back(weight_[i]);
      grp.source_nodes.push_back(node_[i]);
      r.group_of_source[weight_[i]] = grp.id;
    }
    auto remap = [&](ChannelMap& m) {
      for (auto& s : m.segments)
        if (s.group >= 0) s.group = final_id.at(find(s.group));
    };
    r.cuts = cuts_;
    for (auto& c : r.cuts) remap(c.map);
    r.attrs = attrs_;
    for (auto& a : r.attrs)
      for (auto& m : a.maps) remap(m);
    return r;
  }

  const Graph& g_;
  std::map<std::string, int> uses_;
  std::map<std::string, Tracked> tracked_;
  std::vector<int> parent_;
  std::vector<int64_t> channels_;
  std::vector<std::string> weight_, node_, reason_;
  std::vector<ChannelCut> cuts_;
  std::vector<ChannelAttr> attrs_;
};

}  // namespace

ChannelAnalysis analyze_channel_groups(const Graph& g) { return Analyzer(g).run(); }

const ChannelGroup& ChannelAnalysis::group_of(const Graph& g, const std::string& param) const {
  auto it = group_of_source.find(param);
  if (it != group_of_source.end()) {
    const ChannelGroup& grp = groups.at(it->second);
    SLIM_CHECK(grp.prunable, "param '", param, "' cannot be pruned: ", grp.reason);
    return grp;
  }
  SLIM_CHECK(g.is_initializer(param), "unknown param '", param,
             "': no initializer of that name in graph '", g.name, "'");
  for (int i : g.consumers(param)) {
    const Node& n = g.nodes[i];
    if (n.op_type != "Conv" || n.input(1) != param) continue;
    const int64_t group = n.i("group", 1);
    if (group > 1) {
      const int p = g.producer(n.inputs[0]);
      std::string hint;
      if (p >= 0) hint = " (input from " + g.nodes[p].label() + ")";
      SLIM_FAIL("param '", param, "' is the weight of ", n.label(), " with group=", group,
                ": its filters follow its input channels; prune the conv producing them", hint,
                " instead");
    }
    SLIM_FAIL("param '", param, "' of ", n.label(), " cannot be pruned (shared weight)");
  }
  SLIM_FAIL("param '", param, "' is not a Conv weight (shape ",
            shape_to_string(g.initializers.at(param).sizes().vec()), ")");
}

}  // namespace slim
