// slim sensitivity | sensitivity merge | ratios
#include <charconv>
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "slim/analysis/summary.h"
#include "slim/dist/dist.h"
#include "slim/prune/prune_channels.h"
#include "slim/prune/sensitivity.h"

namespace slim::cli {

namespace {

struct SensitivityArgs {
  std::string model, data, params_regex, criterion = "l1_norm", shard;
  ImageFlags image;
  std::vector<std::string> params;
  SensitivityOptions opts;
};

struct MergeArgs {
  std::vector<std::string> inputs;
  std::string out;
};

struct RatiosArgs {
  std::string sens;
  double loss = 0;
  bool json = false;
};

/// "I/N" with 0 <= I < N; errors name the text.
std::pair<int, int> parse_shard(const std::string& text) {
  auto slash = text.find('/');
  int i = -1, n = -1;
  bool ok = slash != std::string::npos;
  if (ok) {
    const char* b = text.data();
    const char* s = b + slash;
    const char* e = b + text.size();
    auto [p1, ec1] = std::from_chars(b, s, i);
    auto [p2, ec2] = std::from_chars(s + 1, e, n);
    ok = ec1 == std::errc() && p1 == s && ec2 == std::errc() && p2 == e;
  }
  SLIM_CHECK(ok && n >= 1 && i >= 0 && i < n, "--shard '", text,
             "': expected I/N with 0 <= I < N, e.g. 0/2");
  return {i, n};
}

}  // namespace

void add_sensitivity(CLI::App& app) {
  auto a = std::make_shared<SensitivityArgs>();
  auto* cmd = app.add_subcommand(
      "sensitivity",
      "Top-1 loss of pruning each conv at each ratio (PaddleSlim's sensitivity); resumable");
  // Not CLI-required: `slim sensitivity merge ...` has no model.
  cmd->add_option("model", a->model, "ONNX file");
  cmd->add_option("--data", a->data, "test data: mnist:DIR, fashion:DIR or folder:DIR");
  add_image_flags(cmd, &a->image);
  auto* params = cmd->add_option("--params", a->params,
                                 "conv weights to analyse, a,b,... (default: every prunable conv)")
                     ->delimiter(',');
  auto* regex = cmd->add_option("--params-regex", a->params_regex,
                                "analyse every prunable conv weight whose name matches (whole "
                                "name, ECMAScript)");
  params->excludes(regex);
  cmd->add_option("--ratios", a->opts.ratios,
                  "pruning ratios to try, in [0, 1) (default 0.1,0.2,...,0.9)")
      ->delimiter(',');
  cmd->add_option("--criterion", a->criterion,
                  "filter importance: l1_norm, l2_norm, l0_norm, fpgm, bn_scale");
  cmd->add_option("--align", a->opts.align, "keep channel counts multiples of N")
      ->check(positive());
  cmd->add_option("--shard", a->shard, "run only work items with index % N == I (I/N)");
  cmd->add_option("--batch", a->opts.eval.batch_size, "evaluation batch size")->check(positive());
  cmd->add_option("--max-samples", a->opts.eval.max_samples, "evaluate the first N samples only")
      ->check(non_negative());
  cmd->add_option("-o,--output", a->opts.output,
                  "sensitivity file: rewritten after each conv's ratios, existing entries skipped");
  add_threads_option(cmd, &a->opts.eval.threads);
  cmd->add_flag("!--no-share-prefix", a->opts.share_prefix,
                "evaluate every (param, ratio) whole, as PaddleSlim does, instead of running the "
                "layers before each conv once for all its ratios (same values; for comparison)");

  auto m = std::make_shared<MergeArgs>();
  auto* merge = cmd->add_subcommand("merge", "Union of sensitivity files (a later file wins)");
  merge->add_option("inputs", m->inputs, "sensitivity files")->required();
  merge->add_option("-o,--output", m->out, "merged file (written atomically)")
      ->required()
      ->check(output_file());
  merge->callback([m] {
    std::vector<Sensitivities> parts;
    for (const auto& f : m->inputs) parts.push_back(sensitivity_load(f));
    sensitivity_save(sensitivity_merge(parts), m->out);
  });

  cmd->callback([a, merge] {
    if (merge->parsed()) return;
    SLIM_CHECK(!a->model.empty(), "sensitivity: give the ONNX model (or `sensitivity merge`)");
    SLIM_CHECK(!a->data.empty(), "sensitivity: --data is required");
    SLIM_CHECK(!a->opts.output.empty(), "sensitivity: -o/--output is required");
    a->opts.criterion = criterion_from_string(a->criterion);
    if (!a->shard.empty())
      std::tie(a->opts.shard_index, a->opts.shard_count) = parse_shard(a->shard);
    a->opts.eval.progress = false;  // one line per evaluation instead
    a->opts.group = dist::current();
    Graph g = load_model_for_analysis(a->model);
    if (!allow_batches(g, a->model)) a->opts.eval.batch_size = 1;
    if (!a->params.empty()) {
      a->opts.params = a->params;
    } else if (!a->params_regex.empty()) {
      a->opts.params = prunable_params_matching(g, a->params_regex);
    } else {
      a->opts.params = prunable_params(g);
      SLIM_CHECK(!a->opts.params.empty(), a->model,
                 ": no prunable conv (sensitivity prunes the output channels of Conv nodes)");
      if (lead_rank())
        std::cerr << "sensitivity: every prunable conv (" << a->opts.params.size()
                  << "); --params or --params-regex choose fewer\n";
    }
    sensitivity(g, open_data(a->data, Split::kTest, g, a->image), a->opts);
  });
}

void add_ratios(CLI::App& app) {
  auto a = std::make_shared<RatiosArgs>();
  auto* cmd = app.add_subcommand(
      "ratios", "Per-param pruning ratios for an accepted loss (PaddleSlim's get_ratios_by_loss)");
  cmd->add_option("--sens", a->sens, "sensitivity file")->required();
  cmd->add_option("--loss", a->loss, "accepted relative top-1 loss, e.g. 0.01")->required();
  cmd->add_flag("--json", a->json, "print one JSON object {\"param\": ratio, ...}");
  cmd->callback([a] {
    SLIM_CHECK(std::isfinite(a->loss), "--loss ", a->loss, " is not a finite number");
    Sensitivities s = sensitivity_load(a->sens);
    auto ratios = ratios_by_loss(s, a->loss);
    for (const auto& [param, points] : s)
      if (!ratios.count(param))
        std::cerr << "slim ratios: " << param
                  << " left out: no measured ratio has loss <= " << a->loss << "\n";
    if (a->json) {
      nlohmann::json j = nlohmann::json::object();
      for (const auto& [param, r] : ratios) j[param] = r;
      std::cout << j.dump() << "\n";
      return;
    }
    for (const auto& [param, r] : ratios)
      std::cout << param << " " << sensitivity_ratio_key(r) << "\n";
  });
}

}  // namespace slim::cli
