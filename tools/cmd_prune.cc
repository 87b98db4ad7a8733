// slim prune
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "slim/analysis/flops.h"
#include "slim/analysis/model_stats.h"
#include "slim/analysis/summary.h"
#include "slim/ir/parse.h"
#include "slim/onnx/onnx_io.h"
#include "slim/prune/prune_channels.h"
#include "slim/prune/select_ratios.h"

namespace slim::cli {

namespace {

struct PruneArgs {
  std::string model, input, out, sens, criterion = "l1_norm", params_regex;
  std::vector<std::string> ratios;
  double loss = -1, flops_target = -1, uniform = -1, max_ratio = 0.9;
  PruneOptions opts;
  bool json = false;
};

/// "name=0.3" -> (name, 0.3); errors name the text.
std::pair<std::string, double> parse_ratio(const std::string& text) {
  const auto eq = text.rfind('=');
  SLIM_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < text.size(), "--ratios entry '", text,
             "' is not NAME=RATIO");
  const std::string num = text.substr(eq + 1);
  auto r = parse_double(num);
  SLIM_CHECK(r.has_value(), "--ratios entry '", text, "': '", num, "' is not a number");
  return {text.substr(0, eq), *r};
}

}  // namespace

void add_prune(CLI::App& app) {
  auto a = std::make_shared<PruneArgs>();
  auto* cmd = app.add_subcommand(
      "prune", "Remove conv filters (and everything coupled to them) and save the smaller model");
  cmd->add_option("model", a->model, "ONNX file")->required();
  cmd->add_option("-o,--output", a->out, "pruned ONNX file (written atomically)")
      ->required()
      ->check(output_file());
  cmd->add_option("--input", a->input, "input shape without batch, e.g. 1,28,28");
  auto* ratios =
      cmd->add_option("--ratios", a->ratios, "per-param ratios: NAME=R,NAME=R,...")->delimiter(',');
  auto* sens = cmd->add_option("--sens", a->sens, "sensitivity file (slim sensitivity)");
  auto* loss = cmd->add_option("--loss", a->loss, "with --sens: accepted relative accuracy loss")
                   ->check(CLI::Range(0.0, 1.0));
  auto* flops = cmd->add_option("--flops-target", a->flops_target,
                                "FLOPs reduction to reach, e.g. 0.5 (with --sens: bisect the "
                                "loss; without: rank normalised importance across layers)")
                    ->check(CLI::Range(0.0, 1.0));
  auto* uniform = cmd->add_option("--uniform", a->uniform,
                                  "the same ratio for every prunable group (or those matching "
                                  "--params-regex)")
                      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--params-regex", a->params_regex,
                  "with --uniform or --flops-target: only groups whose conv weight matches");
  cmd->add_option("--max-ratio", a->max_ratio, "global --flops-target: cap per group")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--criterion", a->criterion, "l1_norm, l2_norm, l0_norm, fpgm or bn_scale");
  cmd->add_option("--align", a->opts.align,
                  "round kept channels of every group to a multiple of N (8 suits SIMD kernels)")
      ->check(positive());
  cmd->add_flag("--lazy", a->opts.lazy, "zero the pruned filters instead of removing them");
  cmd->add_flag("--json", a->json, "print one JSON object");
  ratios->excludes(sens)->excludes(flops)->excludes(uniform);
  uniform->excludes(sens)->excludes(flops);
  loss->needs(sens);
  cmd->callback([a] {
    a->opts.criterion = criterion_from_string(a->criterion);
    Graph g = load_model_for_analysis(a->model, a->input);
    const int64_t flops_before = count_flops(g).total;
    const int64_t params_before = count_params(g).count;
    PruneSelection sel;
    for (const auto& r : a->ratios) {
      auto [name, ratio] = parse_ratio(r);
      SLIM_CHECK(!sel.ratios.count(name), "--ratios names '", name, "' twice");
      sel.ratios[name] = ratio;
    }
    sel.sens = a->sens;
    sel.loss = a->loss;
    sel.flops_target = a->flops_target;
    sel.uniform = a->uniform;
    sel.params_regex = a->params_regex;
    sel.max_ratio = a->max_ratio;
    const SelectedRatios chosen = select_prune_ratios(g, sel, a->opts);
    a->opts.ratios = chosen.ratios;
    const double threshold = chosen.threshold;
    PruneReport rep = prune_channels(g, a->opts);
    const int64_t flops_after = count_flops(g).total;
    onnx_save(g, a->out);

    if (a->json) {
      nlohmann::json j;
      j["output"] = a->out;
      j["flops_before"] = flops_before;
      j["flops_after"] = flops_after;
      j["params_before"] = params_before;
      j["params_after"] = count_params(g).count;
      j["ratios"] = a->opts.ratios;
      if (threshold >= 0) j["threshold"] = threshold;
      j["pruned"] = nlohmann::json::array();
      for (const auto& p : rep.pruned)
        j["pruned"].push_back({{"master", p.master},
                               {"params", p.params},
                               {"channels", p.channels},
                               {"kept", p.kept}});
      j["skipped"] = nlohmann::json::array();
      for (const auto& s : rep.skipped)
        j["skipped"].push_back(
            {{"params", s.params}, {"channels", s.channels}, {"reason", s.reason}});
      j["unaligned"] = rep.unaligned;
      std::cout << j.dump() << "\n";
      return;
    }
    for (const auto& p : rep.pruned)
      std::printf(
          "pruned %-32s %5lld -> %5lld channels%s\n", p.master.c_str(),
          static_cast<long long>(p.channels), static_cast<long long>(p.kept),
          p.params.size() > 1
              ? (" (with " + std::to_string(p.params.size() - 1) + " coupled conv(s))").c_str()
              : "");
    for (const auto& s : rep.skipped)
      std::printf("skipped %s (%lld channels): %s\n", s.params.front().c_str(),
                  static_cast<long long>(s.channels), s.reason.c_str());
    std::printf(
        "FLOPs before: %lld\nFLOPs after: %lld (%.2f%% fewer)\n",
        static_cast<long long>(flops_before), static_cast<long long>(flops_after),
        100.0 * (1.0 - static_cast<double>(flops_after) / static_cast<double>(flops_before)));
    std::printf("params before: %lld, after: %lld\nsaved %s\n",
                static_cast<long long>(params_before),
                static_cast<long long>(count_params(g).count), a->out.c_str());
    if (!rep.unaligned.empty())
      std::fprintf(stderr,
                   "note: %zu pruned group(s) keep a channel count that is not a multiple of 8 "
                   "(e.g. %s); SIMD kernels may run slower than on the unpruned model. Use "
                   "--align 8 to round the kept counts.\n",
                   rep.unaligned.size(), rep.unaligned.front().c_str());
  });
}

}  // namespace slim::cli
