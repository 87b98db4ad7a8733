#include "slim/prune/sensitivity.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "slim/dist/dist.h"
#include "slim/exec/executor.h"
#include "slim/onnx/onnx_io.h"
#include "slim/prune/channel_groups.h"
#include "slim/prune/prune_channels.h"

namespace slim {

namespace {

/// Parses a whole string as a double ("0.1", "1e-05"); nullopt if anything is left over.
std::optional<double> parse_double(const std::string& s) {
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

bool valid_ratio(double r) { return r >= 0.0 && r < 1.0; }  // false for NaN too

}  // namespace

std::string sensitivity_ratio_key(double ratio) {
  // Fixed notation keeps keys readable for ratios in [0, 1) ("0.0001", not "1e-04"); without a
  // precision to_chars gives the shortest text that reads back as the same double.
  char buf[400];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), ratio, std::chars_format::fixed);
  SLIM_ASSERT(ec == std::errc(), "to_chars failed for ", ratio);
  return std::string(buf, end);
}

namespace {
Sensitivities sensitivity_parse(const std::string& text, const std::string& path);
std::string sensitivity_text(const Sensitivities& s);
}  // namespace

Sensitivities sensitivity_load(const std::string& path) {
  return sensitivity_parse(read_file(path), path);
}

void sensitivity_save(const Sensitivities& s, const std::string& path) {
  write_file_atomic(path, sensitivity_text(s));
}

namespace {

Sensitivities sensitivity_parse(const std::string& text, const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    SLIM_FAIL("sensitivity file '", path, "' is not valid JSON: ", e.what());
  }
  SLIM_CHECK(j.is_object(), "sensitivity file '", path,
             "': expected an object {\"param\": {\"ratio\": loss, ...}, ...}, got ", j.type_name());
  Sensitivities s;
  for (const auto& [param, points] : j.items()) {
    SLIM_CHECK(points.is_object(), "sensitivity file '", path, "': param '", param, "' maps to ",
               points.type_name(), ", expected an object {\"ratio\": loss, ...}");
    auto& out = s[param];
    for (const auto& [key, loss] : points.items()) {
      auto ratio = parse_double(key);
      SLIM_CHECK(ratio && valid_ratio(*ratio), "sensitivity file '", path, "': param '", param,
                 "': key '", key, "' is not a ratio in [0, 1)");
      SLIM_CHECK(loss.is_number(), "sensitivity file '", path, "': param '", param, "' ratio '",
                 key, "': loss ", loss.dump(), " is not a number");
      SLIM_CHECK(out.count(*ratio) == 0, "sensitivity file '", path, "': param '", param,
                 "': ratio '", key, "' appears twice");
      out[*ratio] = loss.get<double>();
    }
  }
  return s;
}

std::string sensitivity_text(const Sensitivities& s) {
  // ordered_json keeps ratios in numeric order (a plain json object would sort the keys as text).
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [param, points] : s) {
    nlohmann::ordered_json p = nlohmann::ordered_json::object();
    for (const auto& [ratio, loss] : points) {
      SLIM_CHECK(std::isfinite(loss), "sensitivity of '", param, "' at ratio ", ratio, " is ", loss,
                 ", which a JSON file cannot hold");
      p[sensitivity_ratio_key(ratio)] = loss;
    }
    j[param] = std::move(p);
  }
  return j.dump(2) + "\n";
}

/// Index of the first node of `pruned` that computes anything differently from `g`: its op,
/// wiring or weights differ, or it reads a value such a node produced. Every node before it
/// produces exactly what g's node produces (prune_channels keeps node order and names).
size_t first_affected(const Graph& g, const Graph& pruned) {
  std::set<std::string> changed;
  const size_t n = std::min(g.nodes.size(), pruned.nodes.size());
  for (size_t i = 0; i < n; ++i) {
    const Node &a = g.nodes[i], &b = pruned.nodes[i];
    if (a.op_type != b.op_type || a.name != b.name || a.inputs != b.inputs ||
        a.outputs != b.outputs)
      return i;
    for (const auto& in : b.inputs) {
      if (in.empty()) continue;
      if (changed.count(in)) return i;
      const bool ia = g.is_initializer(in), ib = pruned.is_initializer(in);
      if (ia != ib) return i;
      if (ia && !g.initializers.at(in).equal(pruned.initializers.at(in))) return i;
    }
    // Attributes (a pruned depthwise conv's group) come with a changed weight shape; compare
    // them anyway through their printed form.
    if (a.label() != b.label() || a.attrs.size() != b.attrs.size()) return i;
  }
  return n;
}

/// Nodes [begin, end) of `g` as a graph of their own, for inference: its inputs are the values
/// those nodes read that earlier nodes (or g's inputs) produce, its outputs `outputs`.
Graph slice_graph(const Graph& g, size_t begin, size_t end,
                  const std::vector<std::string>& outputs) {
  Graph s;
  s.name = g.name;
  s.opset = g.opset;
  s.ir_version = g.ir_version;
  s.other_opsets = g.other_opsets;
  std::set<std::string> produced, seen;
  for (size_t i = begin; i < end; ++i)
    for (const auto& o : g.nodes[i].outputs) produced.insert(o);
  for (size_t i = begin; i < end; ++i) {
    const Node& node = g.nodes[i];
    s.nodes.push_back(node);
    if (g.frozen_nodes.count(node.name)) s.frozen_nodes.insert(node.name);
    for (const auto& in : node.inputs) {
      if (in.empty() || produced.count(in) || !seen.insert(in).second) continue;
      if (g.is_initializer(in)) {
        s.initializers[in] = g.initializers.at(in);
        continue;
      }
      ValueInfo v;
      v.name = in;
      for (const auto& gi : g.inputs)
        if (gi.name == in) v.dtype = gi.dtype;
      s.inputs.push_back(v);
    }
  }
  for (const auto& o : outputs) {
    ValueInfo v;
    v.name = o;
    s.outputs.push_back(v);
  }
  for (const auto& [name, info] : g.value_info)
    if (produced.count(name)) s.value_info[name] = info;
  return s;
}

/// Top-1 of each of `pruned` (copies of g, each with one conv pruned) on `data`, as evaluate()
/// gives it, running what they share once: for each batch the nodes before the first one any
/// copy changes run once, and each copy runs only the rest from their outputs.
std::vector<double> top1_sharing_prefix(const Graph& g, const std::vector<Graph>& pruned,
                                        const std::shared_ptr<Dataset>& data,
                                        const EvalOptions& eo) {
  size_t k = g.nodes.size();
  for (const auto& p : pruned) k = std::min(k, first_affected(g, p));
  // A ratio that removes nothing changes no node: its copy still runs the node producing the
  // logits.
  const int head = g.producer(logits_value(g));
  if (head >= 0) k = std::min(k, static_cast<size_t>(head));
  std::vector<Graph> suffix;
  suffix.reserve(pruned.size());
  std::vector<std::string> fetch;
  for (const auto& p : pruned) {
    fetch.push_back(logits_value(p));
    suffix.push_back(slice_graph(p, k, p.nodes.size(), {fetch.back()}));
  }
  // What the suffixes read from the prefix (or the images).
  std::vector<std::string> boundary;
  {
    std::set<std::string> b;
    for (const auto& s : suffix)
      for (const auto& in : s.inputs) b.insert(in.name);
    boundary.assign(b.begin(), b.end());
  }
  const std::string image = g.inputs[0].name;
  std::vector<std::string> from_prefix;
  for (const auto& b : boundary)
    if (b != image) from_prefix.push_back(b);
  Graph prefix = slice_graph(g, 0, k, from_prefix);
  set_num_threads(eo.threads);
  std::unique_ptr<Executor> pre;
  if (!from_prefix.empty()) pre = std::make_unique<Executor>(prefix);
  std::vector<std::unique_ptr<Executor>> post;
  for (auto& s : suffix) post.push_back(std::make_unique<Executor>(s));
  LoaderOptions lo;
  lo.batch_size = eo.batch_size;
  lo.shuffle = false;
  lo.max_samples = eo.max_samples;
  DataLoader loader(data, lo);
  loader.start_epoch(0);
  std::vector<int64_t> correct(pruned.size(), 0);
  int64_t samples = 0;
  Batch b;
  while (loader.next(b)) {
    std::map<std::string, at::Tensor> values;
    if (pre) values = pre->run_named({{image, b.images}}, from_prefix);
    values[image] = b.images;
    for (size_t j = 0; j < suffix.size(); ++j) {
      std::map<std::string, at::Tensor> feeds;
      for (const auto& in : suffix[j].inputs) feeds[in.name] = values.at(in.name);
      at::Tensor logits = post[j]->run_named(feeds, {fetch[j]}).at(fetch[j]);
      SLIM_CHECK(logits.dim() == 2 && logits.size(1) >= data->num_classes(), "model output '",
                 fetch[j], "' has shape ", shape_to_string(logits.sizes().vec()), " but ",
                 data->describe(), " has ", data->num_classes(), " classes");
      correct[j] += correct_topk(logits, b.labels, 1);
    }
    samples += b.labels.size(0);
  }
  SLIM_CHECK(samples > 0, data->describe(), " has no samples to evaluate");
  std::vector<double> top1;
  for (int64_t c : correct) top1.push_back(static_cast<double>(c) / static_cast<double>(samples));
  return top1;
}

/// Exact text of a double (17 significant digits read back to the same value).
std::string exact(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

}  // namespace

Sensitivities sensitivity_merge(const std::vector<Sensitivities>& parts) {
  Sensitivities out;
  for (const auto& part : parts)
    for (const auto& [param, points] : part)
      for (const auto& [ratio, loss] : points) out[param][ratio] = loss;
  return out;
}

Sensitivities sensitivity(const Graph& g, const std::shared_ptr<Dataset>& data,
                          const SensitivityOptions& opts) {
  // Everything the user gave is checked before the first evaluation, so a bad run neither costs
  // time nor touches the output file.
  SLIM_CHECK(data != nullptr, "sensitivity: no dataset");
  SLIM_CHECK(!opts.params.empty(), "sensitivity: no params to analyse");
  SLIM_CHECK(!opts.ratios.empty(), "sensitivity: no ratios to try");
  SLIM_CHECK(opts.align >= 1, "sensitivity: align must be >= 1, got ", opts.align);
  SLIM_CHECK(opts.shard_count >= 1 && opts.shard_index >= 0 && opts.shard_index < opts.shard_count,
             "sensitivity: shard ", opts.shard_index, "/", opts.shard_count,
             " is not I/N with 0 <= I < N");
  std::set<double> seen_ratios;
  for (double r : opts.ratios) {
    SLIM_CHECK(valid_ratio(r), "sensitivity: ratio ", r, " is outside [0, 1)");
    SLIM_CHECK(seen_ratios.insert(r).second, "sensitivity: ratio ", r, " is listed twice");
  }
  {
    ChannelAnalysis analysis = analyze_channel_groups(g);
    std::set<std::string> seen;
    for (const auto& p : opts.params) {
      SLIM_CHECK(seen.insert(p).second, "sensitivity: param '", p, "' is listed twice");
      analysis.group_of(g, p);  // throws, naming the param and why it cannot be pruned
      // Scores are cheap; computing them now catches e.g. bn_scale on a conv without a BN.
      filter_importance(g, p, opts.criterion);
    }
  }
  dist::Group* group = opts.group && opts.group->size() > 1 ? opts.group : nullptr;
  const bool lead = !group || group->rank() == 0;
  const bool progress = opts.progress && lead;
  Sensitivities result;
  if (!opts.output.empty() && lead) {
    if (std::filesystem::exists(opts.output)) {
      result = sensitivity_load(opts.output);
    } else {
      // Found now rather than when the first evaluation is done and cannot be saved.
      auto dir = std::filesystem::path(opts.output).parent_path();
      SLIM_CHECK(dir.empty() || std::filesystem::is_directory(dir), "sensitivity: cannot write '",
                 opts.output, "': directory '", dir.string(), "' does not exist");
    }
  }

  if (group) {
    // Rank 0 has the file; every rank works from its entries.
    if (lead) group->set("sensitivity/existing", sensitivity_text(result));
    result = sensitivity_parse(group->get("sensitivity/existing"), opts.output);
  }

  struct Item {
    const std::string* param;
    double ratio;
  };
  std::vector<Item> todo;
  int64_t total = 0, done_before = 0;
  for (const auto& p : opts.params)
    for (double r : opts.ratios) {
      int64_t index = total++;
      if (index % opts.shard_count != opts.shard_index) continue;
      auto it = result.find(p);
      if (it != result.end() && it->second.count(r)) {
        ++done_before;
        continue;
      }
      todo.push_back({&p, r});
    }
  if (progress && done_before > 0)
    std::fprintf(stderr, "sensitivity: %lld of this run's entries already in '%s', skipped\n",
                 static_cast<long long>(done_before), opts.output.c_str());
  if (todo.empty()) return result;

  // Rank 0 evaluates the baseline; the other ranks start on their cells meanwhile.
  double baseline = 0;
  if (lead) {
    Graph base = g.clone();
    baseline = evaluate(base, data, opts.eval).top1;
    SLIM_CHECK(baseline > 0, "sensitivity: the unpruned model's top-1 on ", data->describe(),
               " is 0, so a relative loss is undefined");
    if (group) group->set("sensitivity/baseline", exact(baseline));
    if (progress)
      std::fprintf(stderr, "sensitivity: baseline top1 %.4f, %zu (param, ratio) to evaluate%s\n",
                   baseline, todo.size(),
                   group ? (" on " + std::to_string(group->size()) + " ranks").c_str() : "");
  }
  const int world = group ? group->size() : 1, rank = group ? group->rank() : 0;
  // Work goes by conv: the ratios of one conv share the layers before it (todo lists a param's
  // ratios together). Conv u (in todo order) is rank u % world's.
  std::vector<std::vector<size_t>> units;
  std::vector<int> owner(todo.size());
  for (size_t k = 0; k < todo.size(); ++k) {
    if (k == 0 || todo[k].param != todo[k - 1].param) units.emplace_back();
    units.back().push_back(k);
    owner[k] = static_cast<int>((units.size() - 1) % world);
  }
  size_t collected = 0;
  // Rank 0 takes in the cells, its own and (in order) other ranks' as they finish, and saves.
  auto record = [&](size_t k, double top1, int by) {
    const Item& item = todo[k];
    const double loss = (baseline - top1) / baseline;
    result[*item.param][item.ratio] = loss;
    ++collected;
    if (progress)
      std::fprintf(stderr, "sensitivity %zu/%zu %s@%s: top1 %.4f loss %.4f%s\n", collected,
                   todo.size(), item.param->c_str(), sensitivity_ratio_key(item.ratio).c_str(),
                   top1, loss, group ? (" (rank " + std::to_string(by) + ")").c_str() : "");
  };
  std::vector<bool> have(todo.size(), false);
  auto collect = [&] {
    bool any = false;
    for (size_t k = 0; k < todo.size(); ++k) {
      if (have[k] || owner[k] == rank) continue;
      const std::string key = "sensitivity/top1/" + std::to_string(k);
      if (!group->check(key)) continue;
      have[k] = true;
      record(k, std::strtod(group->get(key).c_str(), nullptr), owner[k]);
      any = true;
    }
    if (any && !opts.output.empty()) sensitivity_save(result, opts.output);
  };

  for (const auto& unit : units) {
    if (owner[unit[0]] != rank) continue;
    std::vector<Graph> pruned;
    for (size_t k : unit) {
      pruned.push_back(g.clone());
      PruneOptions po;
      po.ratios = {{*todo[k].param, todo[k].ratio}};
      po.criterion = opts.criterion;
      po.align = opts.align;
      prune_channels(pruned.back(), po);
    }
    std::vector<double> top1;
    if (opts.share_prefix) {
      top1 = top1_sharing_prefix(g, pruned, data, opts.eval);
    } else {
      for (auto& p : pruned) top1.push_back(evaluate(p, data, opts.eval).top1);
    }
    for (size_t j = 0; j < unit.size(); ++j) {
      const size_t k = unit[j];
      if (group) group->set("sensitivity/top1/" + std::to_string(k), exact(top1[j]));
      if (lead) {
        have[k] = true;
        record(k, top1[j], rank);
      }
    }
    if (lead && !opts.output.empty()) sensitivity_save(result, opts.output);
    if (lead && group) collect();
  }
  if (group) {
    if (lead) {
      auto last_check = std::chrono::steady_clock::now();
      while (collected < todo.size()) {
        collect();
        if (collected == todo.size()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (std::chrono::steady_clock::now() - last_check > std::chrono::seconds(2)) {
          group->check_peers("sensitivity (waiting for the other ranks' cells)");
          last_check = std::chrono::steady_clock::now();
        }
      }
    }
    group->barrier("the end of sensitivity");
    if (!lead) {
      baseline = std::strtod(group->get("sensitivity/baseline").c_str(), nullptr);
      for (size_t k = 0; k < todo.size(); ++k)
        result[*todo[k].param][todo[k].ratio] =
            (baseline -
             std::strtod(group->get("sensitivity/top1/" + std::to_string(k)).c_str(), nullptr)) /
            baseline;
    }
  }
  return result;
}

std::map<std::string, double> ratios_by_loss(const Sensitivities& s, double max_loss) {
  std::map<std::string, double> ratios;
  for (const auto& [param, points] : s) {
    // std::map already orders the points by ratio.
    std::vector<std::pair<double, double>> pts(points.begin(), points.end());
    for (size_t i = pts.size(); i-- > 0;) {
      if (!(pts[i].second <= max_loss)) continue;
      if (i + 1 == pts.size()) {
        ratios[param] = pts[i].first;
      } else {
        // i is the last point within the target, so l1 > max_loss >= l0: no division by zero.
        auto [r0, l0] = pts[i];
        auto [r1, l1] = pts[i + 1];
        ratios[param] = r0 + (max_loss - l0) * (r1 - r0) / (l1 - l0);
      }
      break;
    }
  }
  return ratios;
}

}  // namespace slim
