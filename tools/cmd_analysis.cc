// slim info | flops | bench
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>

#include "commands.h"
#include "slim/analysis/flops.h"
#include "slim/analysis/model_stats.h"
#include "slim/analysis/summary.h"
#include "slim/exec/executor.h"
#include "slim/exec/infer_shapes.h"
#include "slim/ir/error.h"
#include "slim/onnx/onnx_io.h"

namespace slim::cli {

namespace {
void note_upgrade(const Graph& g, const std::string& path) {
  if (g.upgraded_from_opset > 0)
    std::fprintf(stderr, "note: %s: opset %lld upgraded to %lld with ONNX's version converter\n",
                 path.c_str(), static_cast<long long>(g.upgraded_from_opset),
                 static_cast<long long>(g.opset));
}
}  // namespace

Graph load_model(const std::string& path) {
  Graph g = onnx_load(path);
  note_upgrade(g, path);
  return g;
}

Graph load_model_for_analysis(const std::string& path, const std::string& input_shapes) {
  Graph g = load_for_analysis(path, input_shapes);
  note_upgrade(g, path);
  return g;
}

void add_threads_option(CLI::App* cmd, int* threads) {
  cmd->add_option("--threads", *threads, "LibTorch intra-op threads (0 = all cores)")
      ->check(non_negative());
}

namespace {

struct InfoArgs {
  std::string model, input;
  bool json = false, graph = false, values = false;
};

/// Every value the graph computes (inputs first, then node outputs in order) with its shape.
nlohmann::json values_json(const Graph& g) {
  nlohmann::json a = nlohmann::json::array();
  auto add = [&](const std::string& v, const std::string& op, const std::string& node) {
    auto shape = g.shape_of(v);
    auto it = g.value_info.find(v);
    std::string dtype = it != g.value_info.end() ? dtype_name(it->second.dtype) : "";
    for (const auto& i : g.inputs)
      if (i.name == v) dtype = dtype_name(i.dtype);
    a.push_back({{"name", v},
                 {"shape", shape ? nlohmann::json(*shape) : nlohmann::json(nullptr)},
                 {"dtype", dtype},
                 {"op", op},
                 {"node", node}});
  };
  for (const auto& i : g.inputs) add(i.name, "input", "");
  for (const auto& n : g.nodes)
    for (const auto& o : n.outputs)
      if (!o.empty()) add(o, n.op_type, n.name);
  return a;
}

struct FlopsArgs {
  std::string model, input;
  bool all = false, json = false, per_node = false;
};

struct BenchArgs {
  std::string model, input;
  LatencyOptions opts;
  bool json = false;
};

/// The slowest nodes, then the time per op type and engine; mean ms per run.
void print_profile(const std::vector<NodeTime>& nodes, double runs) {
  double total = 0;
  for (const auto& n : nodes) total += n.total_ms;
  if (total <= 0) return;
  std::vector<NodeTime> sorted = nodes;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const NodeTime& a, const NodeTime& b) { return a.total_ms > b.total_ms; });
  const size_t top = std::min<size_t>(sorted.size(), 20);
  std::printf("profile: %.3f ms per run in %zu nodes; the %zu slowest:\n", total / runs,
              nodes.size(), top);
  for (size_t i = 0; i < top; ++i)
    std::printf("  %9.3f ms %5.1f%%  %-18s %-7s %s\n", sorted[i].total_ms / runs,
                100.0 * sorted[i].total_ms / total, sorted[i].op_type.c_str(),
                sorted[i].engine.c_str(), sorted[i].node.c_str());
  std::map<std::pair<std::string, std::string>, std::pair<double, int>> by_kind;
  for (const auto& n : nodes) {
    auto& e = by_kind[{n.op_type, n.engine}];
    e.first += n.total_ms;
    ++e.second;
  }
  std::vector<std::pair<std::pair<std::string, std::string>, std::pair<double, int>>> kinds(
      by_kind.begin(), by_kind.end());
  std::stable_sort(kinds.begin(), kinds.end(),
                   [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  std::printf("by op type:\n");
  for (const auto& [k, v] : kinds)
    std::printf("  %9.3f ms %5.1f%%  %-18s %-7s x%d\n", v.first / runs, 100.0 * v.first / total,
                k.first.c_str(), k.second.c_str(), v.second);
}

}  // namespace

void add_info(CLI::App& app) {
  auto args = std::make_shared<InfoArgs>();
  auto* cmd = app.add_subcommand("info", "Ops, parameters, FLOPs and size of an ONNX model");
  cmd->add_option("model", args->model, "ONNX file")->required();
  cmd->add_option("--input", args->input,
                  "input shape without batch, e.g. 1,28,28 (';' between several inputs)");
  cmd->add_flag("--json", args->json, "print one JSON object");
  cmd->add_flag("--graph", args->graph, "also print the graph, one line per node");
  cmd->add_flag("--values", args->values,
                "also list every value (inputs and node outputs) with its shape, e.g. to pick "
                "feature maps for `slim distill --loss`");
  cmd->callback([args] {
    Graph g = load_model_for_analysis(args->model, args->input);
    ModelSummary s = summarize(g, args->model);
    if (args->json) {
      auto j = to_json(s);
      if (args->graph) j["graph_dump"] = g.dump();
      if (args->values) j["values"] = values_json(g);
      std::cout << j.dump() << "\n";
      return;
    }
    std::cout << to_text(s);
    if (args->graph) std::cout << "\n" << g.dump();
    if (args->values) {
      std::cout << "\nvalues (name, shape, op, node):\n";
      for (const auto& v : values_json(g)) {
        std::string shape =
            v["shape"].is_null() ? "?" : shape_to_string(v["shape"].get<std::vector<int64_t>>());
        std::printf("  %-40s %-16s %-20s %s\n", v["name"].get<std::string>().c_str(), shape.c_str(),
                    v["op"].get<std::string>().c_str(), v["node"].get<std::string>().c_str());
      }
    }
  });
}

void add_flops(CLI::App& app) {
  auto args = std::make_shared<FlopsArgs>();
  auto* cmd = app.add_subcommand(
      "flops", "FLOPs per image in PaddleSlim's convention (multiply-accumulates of conv and fc)");
  cmd->add_option("model", args->model, "ONNX file")->required();
  cmd->add_option("--input", args->input, "input shape without batch, e.g. 1,28,28");
  cmd->add_flag("--all", args->all, "also count pooling, BatchNormalization and activations");
  cmd->add_flag("--json", args->json, "print one JSON object");
  cmd->add_flag("--per-node", args->per_node, "list the FLOPs of each node");
  cmd->callback([args] {
    Graph g = load_model_for_analysis(args->model, args->input);
    FlopsReport r = count_flops(g, args->all);
    if (args->json) {
      nlohmann::json j;
      j["flops"] = r.total;
      j["all_ops"] = args->all;
      if (args->per_node) {
        j["per_node"] = nlohmann::json::array();
        for (const auto& n : r.per_node)
          j["per_node"].push_back({{"node", n.node}, {"op_type", n.op_type}, {"flops", n.flops}});
      }
      std::cout << j.dump() << "\n";
      return;
    }
    if (args->per_node)
      for (const auto& n : r.per_node)
        std::cout << n.node << " " << n.op_type << " " << n.flops << "\n";
    std::cout << r.total << "\n";
  });
}

void add_bench(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "Inference latency: median of N runs after warm-up");
  cmd->add_option("model", args->model, "ONNX file")->required();
  cmd->add_option("--input", args->input, "input shape without batch, e.g. 3,224,224");
  cmd->add_option("--batch", args->opts.batch, "batch size")->check(positive());
  add_threads_option(cmd, &args->opts.threads);
  cmd->add_option("--runs", args->opts.runs, "timed runs")->check(positive());
  cmd->add_option("--warmup", args->opts.warmup, "untimed warm-up runs")->check(non_negative());
  cmd->add_flag("!--no-fold-bn", args->opts.fold_batch_norm,
                "time the model as stored (by default Conv+BatchNormalization are folded first, "
                "as ONNX Runtime does)");
  cmd->add_flag("!--no-onednn", args->opts.onednn,
                "run convolutions with ATen's at::convolution instead of Slim's oneDNN path "
                "(prepacked weights, cached primitives, fused activations)");
  cmd->add_flag("--profile", args->opts.profile,
                "also time every node: the slowest nodes and the time per op type and engine "
                "(with --json: a \"profile\" list of every node)");
  cmd->add_flag("--json", args->json, "print one JSON object");
  cmd->callback([args] {
    Graph g = load_model_for_analysis(args->model, args->input);
    if (args->opts.batch != 1)
      SLIM_CHECK(allow_batches(g, args->model), args->model, ": its batch is fixed at 1 and ",
                 "could not be made symbolic (see the note above); bench it with --batch 1");
    LatencyReport r = measure_latency(g, args->opts);
    const double runs = static_cast<double>(r.runs);
    if (args->json) {
      nlohmann::json j{{"model", args->model},
                       {"batch", r.batch},
                       {"threads", r.threads},
                       {"runs", r.runs},
                       {"warmup", args->opts.warmup},
                       {"fold_bn", args->opts.fold_batch_norm},
                       {"onednn", args->opts.onednn},
                       {"median_ms", r.median_ms},
                       {"mean_ms", r.mean_ms},
                       {"min_ms", r.min_ms},
                       {"p90_ms", r.p90_ms},
                       {"samples_ms", r.samples_ms},
                       {"images_per_s", 1000.0 * static_cast<double>(r.batch) / r.median_ms}};
      if (args->opts.profile) {
        j["profile"] = nlohmann::json::array();
        for (const auto& n : r.per_node)
          j["profile"].push_back({{"node", n.node},
                                  {"op_type", n.op_type},
                                  {"engine", n.engine},
                                  {"mean_ms", n.total_ms / runs}});
      }
      std::cout << j.dump() << "\n";
      return;
    }
    std::printf(
        "%s: batch %lld, %d thread(s): median %.3f ms (mean %.3f, min %.3f, p90 %.3f) "
        "over %d runs, %.1f images/s\n",
        args->model.c_str(), static_cast<long long>(r.batch), r.threads, r.median_ms, r.mean_ms,
        r.min_ms, r.p90_ms, r.runs, 1000.0 * static_cast<double>(r.batch) / r.median_ms);
    if (args->opts.profile) print_profile(r.per_node, runs);
  });
}

}  // namespace slim::cli
