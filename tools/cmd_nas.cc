// slim nas | nas export | nas spaces
#include <chrono>
#include <fstream>
#include <iostream>
#include <random>

#include "commands.h"
#include "slim/dist/dist.h"
#include "slim/exec/infer_shapes.h"
#include "slim/nas/latency_table.h"
#include "slim/nas/search.h"
#include "slim/onnx/onnx_io.h"
#include "slim/passes/fold_batch_norm.h"
#include "slim/pipeline/compose.h"
#include "slim/quant/quantize_weights.h"
#include "slim/train/progress.h"

namespace slim::cli {

namespace {

struct NasArgs {
  std::string input, data, size_format = "float", latency_table;
  ImageFlags image;
  TrainFlags flags;
  NasOptions opts;
  int64_t classes = 0;
  bool json = false;
};

struct TableArgs {
  std::string space, input = "1,28,28", out;
  std::vector<std::string> models;
  int64_t classes = 10;
  LatencyTableOptions opts;
};

struct ExportArgs {
  std::string space, tokens, input = "1,28,28", out;
  int64_t classes = 10;
  uint64_t seed = 0;
};

std::vector<int64_t> parse_chw(const std::string& text) {
  auto shapes = parse_input_shapes(text);
  SLIM_CHECK(shapes.size() == 1 && shapes[0].size() == 3, "--input '", text,
             "': expected C,H,W, e.g. 1,28,28");
  return shapes[0];
}

}  // namespace

void add_nas(CLI::App& app) {
  auto a = std::make_shared<NasArgs>();
  auto* cmd = app.add_subcommand(
      "nas", "Simulated-annealing architecture search under FLOPs, size and latency limits");
  NasOptions& o = a->opts;
  cmd->add_option("--space", o.space, "search space (see `slim nas spaces`)");
  cmd->add_option("--input", a->input, "input shape C,H,W, e.g. 1,28,28");
  cmd->add_option("--classes", a->classes, "classes (default: the data's)")->check(positive());
  cmd->add_option("--data", a->data, "training data: mnist:DIR, fashion:DIR or folder:DIR");
  add_image_flags(cmd, &a->image);
  cmd->add_option("--steps", o.steps, "candidates to train, the initial tokens included")
      ->check(positive());
  cmd->add_option("--max-flops", o.limits.max_flops, "limit: FLOPs (multiply-accumulates)")
      ->check(non_negative());
  cmd->add_option("--max-params", o.limits.max_params, "limit: weight elements")
      ->check(non_negative());
  cmd->add_option("--max-size", o.limits.max_size, "limit: bytes of the ONNX file")
      ->check(non_negative());
  cmd->add_option("--size-format", a->size_format,
                  "what --max-size measures: float (the file as searched) or int8 (BN folded, "
                  "weights int8)")
      ->check(CLI::IsMember({"float", "int8"}));
  cmd->add_option("--max-latency-ms", o.limits.max_latency_ms,
                  "limit: median latency measured here with Slim's executor")
      ->check(non_negative());
  auto* latency_batch = cmd->add_option("--latency-batch", o.latency_batch,
                                        "batch of the latency measurement (default 1; with "
                                        "--latency-table, the table's)")
                            ->check(positive());
  cmd->add_option("--latency-threads", o.latency_threads,
                  "threads of the latency measurement (default: --threads)")
      ->check(non_negative());
  cmd->add_option("--latency-runs", o.latency_runs, "timed runs per candidate (median)")
      ->check(positive());
  cmd->add_option("--latency-table", a->latency_table,
                  "predict latency from this table (slim latency-table) instead of measuring");
  cmd->add_option("--latency-weight", o.latency_weight,
                  "reward = val_top1 * (latency / target)^-W (MnasNet: 0.07); 0 = off")
      ->check(non_negative());
  cmd->add_option("--target-latency-ms", o.target_latency_ms,
                  "target of --latency-weight (default --max-latency-ms)")
      ->check(non_negative());
  cmd->add_option("--val-samples", o.val_samples,
                  "training samples held out for the reward (drawn by --seed)")
      ->check(positive());
  cmd->add_option("--eval-batch", o.eval_batch, "validation batch size")->check(positive());
  cmd->add_option("--init-temperature", o.controller.init_temperature, "T0 (default 1)")
      ->check(positive());
  cmd->add_option("--reduce-rate", o.controller.reduce_rate, "temperature factor per step")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--max-draws", o.max_draws,
                  "candidates in a row over a limit before the search gives up")
      ->check(positive());
  add_train_flags(cmd, &a->flags);
  cmd->add_option("-o,--output", o.output_dir,
                  "run directory: checkpoint.json (resumed), search.log, best.json, best.onnx");
  cmd->add_flag("--json", a->json, "print one JSON object with every candidate");

  auto e = std::make_shared<ExportArgs>();
  auto* ex = cmd->add_subcommand("export", "Build one candidate of a space as ONNX");
  ex->add_option("--space", e->space, "search space")->required();
  ex->add_option("--tokens", e->tokens, "token vector, e.g. 4,4,5,1,0,...")->required();
  ex->add_option("--input", e->input, "input shape C,H,W (default 1,28,28)");
  ex->add_option("--classes", e->classes, "classes (default 10)")->check(positive());
  ex->add_option("--seed", e->seed, "seed of the weight initialisation (default 0)");
  ex->add_option("-o,--output", e->out, "ONNX file (written atomically)")
      ->required()
      ->check(output_file());
  ex->callback([e] {
    ZooOptions zo;
    zo.input = parse_chw(e->input);
    zo.classes = e->classes;
    zo.seed = e->seed;
    onnx_save(search_space_make(e->space)->build(tokens_parse(e->tokens), zo), e->out);
  });

  auto* spaces = cmd->add_subcommand("spaces", "List the search spaces with their tokens");
  spaces->callback([] {
    for (const auto& n : search_space_names()) {
      auto s = search_space_make(n);
      std::cout << n << "  " << s->describe() << "\n  init  " << tokens_to_string(s->init_tokens())
                << "\n  range " << tokens_to_string(s->range_table()) << "\n";
    }
  });

  cmd->callback([a, ex, spaces, latency_batch] {
    if (ex->parsed() || spaces->parsed()) return;
    NasOptions& o = a->opts;
    SLIM_CHECK(!a->input.empty(), "nas: --input C,H,W is required");
    SLIM_CHECK(!a->data.empty(), "nas: --data is required");
    SLIM_CHECK(!o.output_dir.empty(), "nas: -o RUN_DIR is required");
    o.input = parse_chw(a->input);
    o.train = a->flags.resolved();
    o.controller.seed = o.train.seed;
    o.group = dist::current();
    // PaddleSlim's rule: the temperature falls as fast as the workers report.
    o.controller.workers = o.group ? o.group->size() : 1;
    if (o.latency_threads == 0) o.latency_threads = o.train.threads;
    o.size_format = a->size_format;
    if (a->size_format == "int8") o.model_size = int8_weight_file_size;
    if (!a->latency_table.empty()) {
      auto t = std::make_shared<LatencyTable>(latency_table_load(a->latency_table));
      SLIM_CHECK(latency_batch->count() == 0 || o.latency_batch == t->batch,
                 "nas: --latency-batch ", o.latency_batch, " is not the batch the latency table '",
                 a->latency_table, "' was measured at (", t->batch,
                 "); leave it out to use the table's");
      o.latency_batch = t->batch;
      o.latency_table = t;
    }
    // The data is read at the search's input; a structure-only build of the initial tokens
    // tells the folder reader the size and channels.
    ZooOptions zo;
    zo.input = o.input;
    zo.classes = a->classes > 0 ? a->classes : 1;
    zo.draw_weights = false;
    auto space = search_space_make(o.space);
    Graph probe = space->build(space->init_tokens(), zo);
    auto data = open_data(a->data, Split::kTrain, probe, a->image, /*labels=*/false);
    o.classes = a->classes > 0 ? a->classes : data->num_classes();
    o.data_description = data->describe();
    o.progress = lead_rank();
    if (o.group && lead_rank() && o.limits.max_latency_ms > 0 && !o.latency_table &&
        o.group->env().local_world_size > 1)
      std::cerr << "note: rank 0 times candidates while the other ranks on this machine train "
                   "theirs, which slows the timings; --latency-table predicts latency instead\n";
    NasResult r = nas_search(o, data);
    if (!lead_rank()) return;
    if (a->json) {
      nlohmann::json j;
      j["best_tokens"] = r.best_tokens;
      j["best_reward"] = r.best_reward;
      j["rewarded"] = r.rewarded;
      j["rejected"] = r.rejected;
      j["seconds"] = r.seconds;
      j["candidates"] = nlohmann::json::array();
      for (const auto& c : r.candidates) j["candidates"].push_back(nas_candidate_json(c));
      std::cout << j.dump() << "\n";
      return;
    }
    std::cout << "best " << tokens_to_string(r.best_tokens) << " reward " << r.best_reward << " ("
              << r.rewarded << " trained, " << r.rejected << " rejected by limits)\n"
              << "saved " << o.output_dir << "/best.onnx\n";
  });
}

void add_latency_table(CLI::App& app) {
  auto a = std::make_shared<TableArgs>();
  auto* cmd = app.add_subcommand(
      "latency-table",
      "Measure a latency table here: every step configuration of a search space or of models");
  cmd->add_option("models", a->models, "ONNX files whose steps to add");
  cmd->add_option("--space", a->space, "add every step configuration of this search space");
  cmd->add_option("--input", a->input, "--space: input shape C,H,W (default 1,28,28)");
  cmd->add_option("--classes", a->classes, "--space: classes (default 10)")->check(positive());
  cmd->add_option("--batch", a->opts.batch, "batch (default 1)")->check(positive());
  cmd->add_option("--runs", a->opts.runs, "timed runs per entry (median; default 30)")
      ->check(positive());
  cmd->add_option("--warmup", a->opts.warmup, "untimed runs first (default 5)")
      ->check(non_negative());
  cmd->add_option("--rounds", a->opts.rounds,
                  "passes over every step, each entry the smallest of its rounds' medians "
                  "(default 1; 3 on a machine whose speed drifts; extends an existing table)")
      ->check(positive());
  add_threads_option(cmd, &a->opts.threads);
  cmd->add_option("-o,--output", a->out,
                  "table JSON: an existing table is extended (same batch and threads), saved "
                  "every second while measuring");
  auto pred = std::make_shared<std::pair<std::string, std::vector<std::string>>>();
  auto* predict = cmd->add_subcommand("predict", "Predict models' latency from a table");
  predict->add_option("table", pred->first, "latency table JSON")->required();
  predict->add_option("models", pred->second, "ONNX files")->required();
  predict->callback([pred] {
    LatencyTable t = latency_table_load(pred->first);
    nlohmann::json j = nlohmann::json::object();
    for (const auto& m : pred->second) j[m] = latency_predict(t, load_model_for_analysis(m));
    std::cout << j.dump() << "\n";
  });
  cmd->callback([a, predict] {
    if (predict->parsed()) return;
    SLIM_CHECK(!a->space.empty() || !a->models.empty(),
               "latency-table: give --space S or ONNX files");
    SLIM_CHECK(!a->out.empty(), "latency-table: -o TABLE.json is required");
    LatencyTable table;
    if (std::ifstream(a->out).good()) table = latency_table_load(a->out);
    auto last_save = std::chrono::steady_clock::now();
    auto save_now_and_then = [&](bool force) {
      const auto now = std::chrono::steady_clock::now();
      if (force || now - last_save > std::chrono::seconds(1)) {
        latency_table_save(table, a->out);
        last_save = now;
      }
    };
    int64_t added = 0, timed = 0;
    // Calibrated at the end of each round on every network of several sizes this run has.
    const int rounds = a->opts.rounds;
    a->opts.calibrate = false;
    auto add = [&](const Graph& g) {
      const size_t before = table.entries.size();
      timed +=
          latency_table_add(table, g, a->opts, [&](int64_t, int64_t) { save_now_and_then(false); });
      added += static_cast<int64_t>(table.entries.size() - before);
    };
    std::vector<Graph> calibration;
    std::vector<Tokens> cover;
    std::unique_ptr<SearchSpace> space;
    ZooOptions zo;
    for (const auto& m : a->models) calibration.push_back(load_model_for_analysis(m));
    if (!a->space.empty()) {
      space = search_space_make(a->space);
      zo.input = parse_chw(a->input);
      zo.classes = a->classes;
      // Networks of several sizes to calibrate on, with their weights drawn: the initial one
      // and five seeded members (the cover below holds all their steps).
      calibration.push_back(space->build(space->init_tokens(), zo));
      std::mt19937_64 rng(zo.seed);
      const Tokens range = space->range_table();
      for (int i = 0; i < 5; ++i) {
        Tokens t = tokens_random(range, rng);
        calibration.push_back(space->build(t, zo));
      }
      zo.draw_weights = false;  // the steps are timed on weights of their own
      cover = space->cover_tokens();
    }
    const std::string what = a->space.empty() ? std::string("models") : a->space;
    for (int r = 1; r <= rounds; ++r) {
      a->opts.rounds = r;
      const int64_t timed_before = timed;
      for (size_t i = 0; i < a->models.size(); ++i) add(calibration[i]);
      if (!cover.empty()) {
        Progress progress(
            "latency-table " + what +
                (rounds > 1 ? " round " + std::to_string(r) + "/" + std::to_string(rounds) : ""),
            static_cast<int64_t>(cover.size()), 100);
        for (size_t i = 0; i < cover.size(); ++i) {
          add(space->build(cover[i], zo));
          progress.update(static_cast<int64_t>(i + 1), 0,
                          std::to_string(table.entries.size()) + " entries");
          save_now_and_then(false);
        }
        progress.finish(std::to_string(table.entries.size()) + " entries");
      }
      // A table extended by a new model keeps its calibration; a new table or a new round of
      // the table's own entries is calibrated again (the networks' times kept as their minimum).
      if (!table.has_fixed || (r > 1 && timed > timed_before)) {
        latency_table_calibrate(table, calibration, a->opts);
        save_now_and_then(true);
      }
    }
    save_now_and_then(true);
    std::printf("%s: %zu entries (%lld new), batch %lld, %d threads, scale %.3f, fixed %.4f ms\n",
                a->out.c_str(), table.entries.size(), static_cast<long long>(added),
                static_cast<long long>(table.batch), table.threads, table.scale, table.fixed_ms);
  });
}

}  // namespace slim::cli
