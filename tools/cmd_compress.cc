// slim compress CONFIG.yaml -o RUN_DIR
#include <cstdio>
#include <fstream>
#include <iostream>

#include "commands.h"
#include "slim/analysis/summary.h"
#include "slim/pipeline/config.h"
#include "slim/pipeline/pipeline.h"

namespace slim::cli {

namespace {

struct CompressArgs {
  std::string config, out;
  bool dry_run = false, json = false, auto_stage = false;
  double max_latency_ms = 0, max_loss = 0.01;
  int64_t max_size = 0;
};

/// One row per stage that has a model measured: stage, top-1, FLOPs, params, bytes, latency.
void print_table(const PipelineResult& r) {
  std::printf("| %-24s | %-6s | %7s | %13s | %10s | %11s | %11s |\n", "stage", "type", "top-1",
              "FLOPs", "params", "file bytes", "latency");
  std::printf("|%s|%s|%s|%s|%s|%s|%s|\n", std::string(26, '-').c_str(), std::string(8, '-').c_str(),
              std::string(9, '-').c_str(), std::string(15, '-').c_str(),
              std::string(12, '-').c_str(), std::string(13, '-').c_str(),
              std::string(13, '-').c_str());
  for (const auto& s : r.stages) {
    if (!s.metrics.contains("measure")) continue;
    const auto& m = s.metrics["measure"];
    char top1[16] = "-";
    if (m.contains("eval"))
      std::snprintf(top1, sizeof top1, "%.4f", m["eval"]["top1"].get<double>());
    char lat[32] = "-";
    if (m.contains("latency"))
      std::snprintf(lat, sizeof lat, "%.3f ms", m["latency"]["median_ms"].get<double>());
    std::printf("| %-24s | %-6s | %7s | %13s | %10s | %11s | %11s |\n", s.name.c_str(),
                m.value("precision", "").c_str(), top1,
                with_commas(m["flops"].get<int64_t>()).c_str(),
                with_commas(m["params"].get<int64_t>()).c_str(),
                with_commas(m["file_bytes"].get<int64_t>()).c_str(), lat);
  }
}

}  // namespace

void add_compress(CLI::App& app) {
  auto a = std::make_shared<CompressArgs>();
  auto* cmd = app.add_subcommand(
      "compress",
      "Run a compression pipeline from one YAML config: stages train, eval, sensitivity, prune, "
      "distill, quant, nas, bench, model and auto, each with the flags of its command as keys; "
      "finished stages are reused, a killed run resumes");
  cmd->add_option("config", a->config, "pipeline config (YAML)")->required();
  cmd->add_option("-o,--output", a->out, "run folder: a folder per stage and summary.json")
      ->required();
  cmd->add_flag("--dry-run", a->dry_run,
                "validate the config and print each stage as run, done (reused) or re-measure");
  cmd->add_flag("--json", a->json, "print summary.json instead of the table");
  auto* auto_flag = cmd->add_flag(
      "--auto", a->auto_stage,
      "end with an auto stage: compress the last model to the budget by a ladder of strategies "
      "(PTQ with each calibration, QAT distilled from the float model, pruning to 30/50/70% "
      "fewer FLOPs with fine-tuning and QAT) and keep the most accurate model that meets it");
  cmd->add_option("--max-latency-ms", a->max_latency_ms,
                  "--auto: latency budget at the config's measure latency-batch")
      ->check(positive())
      ->needs(auto_flag);
  cmd->add_option("--max-size", a->max_size, "--auto: file size budget in bytes")
      ->check(positive())
      ->needs(auto_flag);
  cmd->add_option("--max-loss", a->max_loss,
                  "--auto: top-1 loss allowed, relative to the float model's (default 0.01)")
      ->check(CLI::Range(0.0, 1.0))
      ->needs(auto_flag);
  cmd->callback([a] {
    PipelineConfig c = pipeline_config_load(a->config);
    if (a->auto_stage) {
      SLIM_CHECK(a->max_latency_ms > 0 || a->max_size > 0,
                 "compress --auto: give the budget: --max-latency-ms and/or --max-size");
      for (const auto& s : c.stages)
        SLIM_CHECK(s.name != "auto", a->config,
                   ": has a stage named auto already; --auto adds "
                   "one (or use the config's auto stage alone)");
      PipelineStage s;
      s.kind = s.name = "auto";
      s.pos = {a->config, 0, 0};
      s.params["max-loss"] = a->max_loss;
      if (a->max_latency_ms > 0) s.params["max-latency-ms"] = a->max_latency_ms;
      if (a->max_size > 0) s.params["max-size"] = a->max_size;
      c.stages.push_back(s);
      pipeline_config_check(c);
    }
    PipelineRunOptions o;
    o.dry_run = a->dry_run;
    PipelineResult r = pipeline_run(c, a->out, o);
    if (a->dry_run) return;
    if (a->json) {
      std::ifstream in(a->out + "/summary.json");
      std::cout << in.rdbuf();
      return;
    }
    print_table(r);
    std::printf("final model: %s\nsummary: %s/summary.json\n", r.final_model.c_str(),
                a->out.c_str());
  });
}

}  // namespace slim::cli
