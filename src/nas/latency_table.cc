#include "slim/nas/latency_table.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "slim/analysis/model_stats.h"
#include "slim/exec/executor.h"
#include "slim/exec/infer_shapes.h"
#include "slim/onnx/onnx_io.h"
#include "slim/passes/fold_batch_norm.h"

namespace slim {

namespace {

using Json = nlohmann::json;

/// A network prepared as it is timed: BN folded, every value's shape known, the executor's plan.
struct Prepared {
  Graph g;
  std::vector<PlannedStep> plan;
  std::vector<std::string> sigs;
  std::set<std::string> graph_inputs;
};

std::vector<int64_t> at_batch(std::vector<int64_t> shape, int64_t batch) {
  for (auto& d : shape)
    if (d == kDynamicDim) d = batch;
  return shape;
}

std::string join(const std::vector<int64_t>& v, const char* sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + std::to_string(v[i]);
  return s;
}

std::string attrs_text(const Node& n) {
  std::string s;
  for (const auto& [key, value] : n.attrs) {
    std::ostringstream v;
    if (const auto* i = std::get_if<int64_t>(&value)) {
      v << *i;
    } else if (const auto* f = std::get_if<float>(&value)) {
      v << *f;
    } else if (const auto* str = std::get_if<std::string>(&value)) {
      v << *str;
    } else if (const auto* is = std::get_if<std::vector<int64_t>>(&value)) {
      v << join(*is, ",");
    } else {
      continue;  // tensors and lists of floats or strings: none of the timed ops' shape
    }
    s += " " + key + "=" + v.str();
  }
  return s;
}

const ValueInfo* info_of(const Graph& g, const std::string& v) {
  for (const auto& in : g.inputs)
    if (in.name == v) return &in;
  for (const auto& out : g.outputs)
    if (out.name == v && out.has_shape) return &out;
  auto it = g.value_info.find(v);
  return it == g.value_info.end() || !it->second.has_shape ? nullptr : &it->second;
}

Prepared prepare(const Graph& model, int64_t batch) {
  Prepared p;
  p.g = model;  // shallow: folding replaces the folded convs' tensors and shares the rest
  // Steps are timed on weights of their own (time_step): the folded values are never read.
  fold_batch_norm(p.g, /*values_too=*/false);
  bool known = true;
  for (const auto& n : p.g.nodes)
    for (const auto& v : n.inputs) known = known && (v.empty() || p.g.shape_of(v));
  if (!known) infer_shapes(p.g);
  for (const auto& in : p.g.inputs) p.graph_inputs.insert(in.name);
  Executor ex(p.g);
  p.plan = ex.plan();
  for (const auto& st : p.plan) {
    const Node& n = *st.node;
    std::string s = n.op_type + "[" + st.engine + "]";
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      if (n.inputs[i].empty()) continue;
      const auto shape = p.g.shape_of(n.inputs[i]);
      SLIM_ASSERT(shape, "latency table: value '", n.inputs[i], "' has no shape");
      s += std::string(p.g.is_initializer(n.inputs[i]) ? " w" : " x") + std::to_string(i) + "=" +
           shape_to_string(at_batch(*shape, batch));
    }
    s += attrs_text(n);
    for (const Node* f : st.fused) s += " +" + f->op_type + attrs_text(*f);
    p.sigs.push_back(s);
  }
  return p;
}

/// Times planned step k of `p` alone: a graph of its node and the nodes fused into it, fed
/// random inputs, 4-D activations in channels-last (the layout oneDNN convs leave them in)
/// unless they are the network's own inputs.
double time_step(const Prepared& p, size_t k, int64_t batch, const LatencyTableOptions& o) {
  const PlannedStep& st = p.plan[k];
  std::vector<const Node*> nodes = st.fused;
  nodes.push_back(st.node);
  std::map<const Node*, size_t> order;
  for (size_t i = 0; i < p.g.nodes.size(); ++i) order[&p.g.nodes[i]] = i;
  std::sort(nodes.begin(), nodes.end(),
            [&](const Node* a, const Node* b) { return order.at(a) < order.at(b); });
  Graph m;
  m.name = "latency_step";
  m.opset = p.g.opset;
  std::set<std::string> produced;
  for (const Node* n : nodes) {
    for (const auto& v : n->inputs) {
      if (v.empty() || produced.count(v)) continue;
      if (p.g.initializers.count(v)) {
        // Timing does not depend on the values, and the network may have been built without
        // drawing its weights: small constants (Clip bounds, shapes) are kept, weights drawn.
        const at::Tensor& w = p.g.initializers.at(v);
        at::Generator wg = at::detail::createCPUGenerator(m.initializers.size());
        m.initializers[v] = w.numel() <= 16 ? w
                            : at::isFloatingType(w.scalar_type())
                                ? at::randn(w.sizes(), wg).to(w.scalar_type())
                                : at::randint(-100, 100, w.sizes(), wg).to(w.scalar_type());
      } else if (std::none_of(m.inputs.begin(), m.inputs.end(),
                              [&](const ValueInfo& i) { return i.name == v; })) {
        ValueInfo in = *info_of(p.g, v);
        in.name = v;
        in.shape = at_batch(in.shape, batch);
        in.dim_names.assign(in.shape.size(), "");
        m.inputs.push_back(in);
      }
    }
    m.nodes.push_back(*n);
    for (const auto& v : n->outputs) {
      produced.insert(v);
      if (const ValueInfo* info = info_of(p.g, v)) m.value_info[v] = *info;
    }
  }
  for (const auto& v : nodes.back()->outputs) {
    ValueInfo out;
    if (const ValueInfo* info = info_of(p.g, v)) out = *info;
    out.name = v;
    m.outputs.push_back(out);
  }
  at::Generator gen = at::detail::createCPUGenerator(k);
  std::vector<at::Tensor> inputs;
  for (const auto& in : m.inputs) {
    at::Tensor t;
    if (at::isFloatingType(in.dtype)) {
      t = at::randn(in.shape, gen, at::TensorOptions().dtype(in.dtype));
      if (t.dim() == 4 && !p.graph_inputs.count(in.name))
        t = t.contiguous(at::MemoryFormat::ChannelsLast);
    } else {
      t = at::randint(0, 100, in.shape, gen, at::TensorOptions().dtype(in.dtype));
    }
    inputs.push_back(t);
  }
  Executor ex(m);
  for (int i = 0; i < o.warmup; ++i) ex.run(inputs);
  LatencyReport r;
  for (int i = 0; i < o.runs; ++i) {
    ex.set_profiling(true);
    ex.run(inputs);
    double total = 0;
    for (const auto& t : ex.profile()) total += t.total_ms;
    r.samples_ms.push_back(total);
  }
  ex.set_profiling(false);
  latency_summarize(r);
  return r.median_ms;
}

/// A chain of n Relu nodes on a [1, 1] tensor.
Graph relu_chain(int n) {
  Graph g;
  g.name = "relu_chain";
  g.opset = 13;
  ValueInfo in;
  in.name = "x0";
  in.has_shape = true;
  in.shape = {1, 1};
  in.dim_names = {"", ""};
  g.inputs.push_back(in);
  for (int i = 0; i < n; ++i) {
    Node node;
    node.name = "relu" + std::to_string(i);
    node.op_type = "Relu";
    node.inputs = {"x" + std::to_string(i)};
    node.outputs = {"x" + std::to_string(i + 1)};
    g.nodes.push_back(node);
  }
  ValueInfo out = in;
  out.name = "x" + std::to_string(n);
  g.outputs.push_back(out);
  return g;
}

double step_overhead_ms(const LatencyOptions& lo) {
  Graph one = relu_chain(1), many = relu_chain(101);
  const double per_step =
      (measure_latency(many, lo).median_ms - measure_latency(one, lo).median_ms) / 100;
  // Less what the tiny kernel itself takes (an entry of its own in a table).
  Executor ex(many);
  ex.set_profiling(true);
  for (int i = 0; i < lo.runs; ++i) ex.run({at::zeros({1, 1})});
  double kernel = 0;
  int64_t n = 0;
  for (const auto& t : ex.profile()) kernel += t.total_ms, n += t.runs;
  return std::max(0.0, per_step - kernel / static_cast<double>(std::max<int64_t>(n, 1)));
}

}  // namespace

std::vector<std::string> latency_signatures(const Graph& g, int64_t batch) {
  return prepare(g, batch).sigs;
}

int64_t latency_table_add(LatencyTable& table, const Graph& g, const LatencyTableOptions& o,
                          const std::function<void(int64_t, int64_t)>& on_progress) {
  SLIM_CHECK(o.batch >= 1 && o.runs >= 1 && o.warmup >= 0,
             "latency table: batch and runs must be >= 1, warmup >= 0");
  set_num_threads(o.threads);
  const int threads = num_threads();
  if (table.entries.empty() && !table.has_fixed) {
    table.batch = o.batch;
    table.threads = threads;
    table.warmup = o.warmup;
    table.runs = o.runs;
  }
  SLIM_CHECK(table.batch == o.batch && table.threads == threads, "latency table: measured at ",
             "batch ", table.batch, " with ", table.threads, " threads; this run has batch ",
             o.batch, " and ", threads, " threads");
  SLIM_CHECK(o.rounds >= 1, "latency table: rounds must be >= 1, not ", o.rounds);
  Prepared p = prepare(g, o.batch);
  auto rounds_of = [&](const std::string& sig) {
    if (!table.entries.count(sig)) return 0;
    auto it = table.entry_rounds.find(sig);
    return it == table.entry_rounds.end() ? 1 : it->second;
  };
  std::vector<size_t> todo;
  std::set<std::string> planned;
  for (size_t k = 0; k < p.sigs.size(); ++k)
    if (rounds_of(p.sigs[k]) < o.rounds && planned.insert(p.sigs[k]).second) todo.push_back(k);
  int64_t done = 0;
  for (size_t k : todo) {
    const std::string& sig = p.sigs[k];
    const int had = rounds_of(sig);
    const double ms = time_step(p, k, o.batch, o);
    table.entries[sig] = had ? std::min(table.entries.at(sig), ms) : ms;
    if (had) table.entry_rounds[sig] = had + 1;
    ++done;
    if (on_progress) on_progress(done, static_cast<int64_t>(todo.size()));
  }
  if (!table.has_fixed && o.calibrate) latency_table_calibrate(table, {g}, o);
  return done;
}

void latency_table_calibrate(LatencyTable& table, const std::vector<Graph>& networks,
                             const LatencyTableOptions& o) {
  SLIM_CHECK(!networks.empty(), "latency table: no network to calibrate on");
  LatencyOptions lo;
  lo.batch = table.batch;
  lo.threads = o.threads;
  lo.warmup = std::max(o.warmup, 5);
  lo.runs = std::max(o.runs, 30);
  table.step_ms = step_overhead_ms(lo);
  std::vector<double> x, y;  // sum of entries, measured minus step overhead
  for (const auto& net : networks) {
    double sum = 0;
    const auto sigs = latency_signatures(net, table.batch);
    for (const auto& s : sigs) {
      auto it = table.entries.find(s);
      SLIM_CHECK(it != table.entries.end(), "latency table: calibration network ", net.name,
                 " has a step the table lacks: '", s, "'");
      sum += it->second;
    }
    std::string joined;
    for (const auto& s : sigs) joined += s + "\n";
    char digest[17];
    std::snprintf(digest, sizeof digest, "%016llx",
                  static_cast<unsigned long long>(std::hash<std::string>{}(joined)));
    Graph whole = net.clone();
    double ms = measure_latency(whole, lo).median_ms;
    auto [it, fresh] = table.network_ms.emplace(digest, ms);
    if (!fresh) it->second = ms = std::min(it->second, ms);
    x.push_back(sum);
    y.push_back(ms - table.step_ms * static_cast<double>(sigs.size()));
  }
  const double n = static_cast<double>(x.size());
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) mx += x[i] / n, my += y[i] / n;
  double sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i)
    sxx += (x[i] - mx) * (x[i] - mx), sxy += (x[i] - mx) * (y[i] - my);
  // One network (or networks of one size): the entries as they are, the rest fixed.
  table.scale = x.size() >= 2 && sxx > 1e-12 * mx * mx ? sxy / sxx : 1.0;
  table.fixed_ms = my - table.scale * mx;
  table.has_fixed = true;
}

double latency_predict(const LatencyTable& table, const Graph& g) {
  SLIM_CHECK(table.has_fixed, "latency table has no fixed cost yet: add a whole network to it");
  const auto sigs = latency_signatures(g, table.batch);
  double entries = 0;
  for (const auto& s : sigs) {
    auto it = table.entries.find(s);
    SLIM_CHECK(it != table.entries.end(), "latency table has no entry for the step '", s, "' of ",
               g.name, ": add the model (or its search space) with slim latency-table");
    entries += it->second;
  }
  return table.scale * entries + table.step_ms * static_cast<double>(sigs.size()) + table.fixed_ms;
}

void latency_table_save(const LatencyTable& t, const std::string& path) {
  Json j{{"version", 1},       {"batch", t.batch}, {"threads", t.threads},
         {"warmup", t.warmup}, {"runs", t.runs},   {"entries", t.entries}};
  if (!t.entry_rounds.empty()) j["entry_rounds"] = t.entry_rounds;
  if (!t.network_ms.empty()) j["network_ms"] = t.network_ms;
  if (t.has_fixed) {
    j["fixed_ms"] = t.fixed_ms;
    j["step_ms"] = t.step_ms;
    j["scale"] = t.scale;
  }
  write_file_atomic(path, j.dump(1) + "\n");
}

LatencyTable latency_table_load(const std::string& path) {
  std::ifstream in(path);
  SLIM_CHECK(in.good(), "cannot read latency table '", path, "'");
  try {
    Json j = Json::parse(in);
    SLIM_CHECK(j.at("version").get<int>() == 1, path, ": latency table version ",
               j.at("version").dump(), " (this Slim reads 1)");
    LatencyTable t;
    t.batch = j.at("batch").get<int64_t>();
    t.threads = j.at("threads").get<int>();
    t.warmup = j.at("warmup").get<int>();
    t.runs = j.at("runs").get<int>();
    t.entries = j.at("entries").get<std::map<std::string, double>>();
    if (j.contains("entry_rounds"))
      t.entry_rounds = j.at("entry_rounds").get<std::map<std::string, int>>();
    if (j.contains("network_ms"))
      t.network_ms = j.at("network_ms").get<std::map<std::string, double>>();
    if (j.contains("fixed_ms")) {
      t.fixed_ms = j.at("fixed_ms").get<double>();
      t.step_ms = j.at("step_ms").get<double>();
      t.scale = j.at("scale").get<double>();
      t.has_fixed = true;
    }
    return t;
  } catch (const Json::exception& e) {
    SLIM_FAIL(path, ": not a latency table (", e.what(), ")");
  }
}

}  // namespace slim
