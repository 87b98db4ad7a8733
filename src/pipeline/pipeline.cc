#include "slim/pipeline/pipeline.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "slim/analysis/model_stats.h"
#include "slim/analysis/summary.h"
#include "slim/distill/distill.h"
#include "slim/ir/digest.h"
#include "slim/ir/error.h"
#include "slim/nas/search.h"
#include "slim/onnx/onnx_io.h"
#include "slim/passes/reset_head.h"
#include "slim/pipeline/compose.h"
#include "slim/pipeline/report.h"
#include "slim/prune/importance.h"
#include "slim/prune/prune_channels.h"
#include "slim/prune/select_ratios.h"
#include "slim/prune/sensitivity.h"
#include "slim/quant/calibrate.h"
#include "slim/quant/post_training.h"
#include "slim/quant/qat.h"
#include "slim/quant/quantize_weights.h"
#include "slim/quant/scale_table.h"
#include "slim/train/results_json.h"
#include "slim/train/trainer.h"
#include "slim/zoo/zoo.h"

namespace slim {

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SLIM_CHECK(in.good(), "cannot read '", path, "'");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string file_digest(const std::string& path) { return hex64(fnv1a(read_file(path))); }

Json read_json(const std::string& path) {
  try {
    return Json::parse(read_file(path));
  } catch (const Json::exception& e) {
    SLIM_FAIL(path, ": not JSON (", e.what(), ")");
  }
}

bool writes_model(const std::string& kind) {
  return kind == "train" || kind == "prune" || kind == "distill" || kind == "quant" ||
         kind == "model" || kind == "auto" || kind == "nas";
}

std::string fixed(double v, int digits) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

std::string fmt_loss(double loss, double max_loss) {
  return "top-1 loss " + fixed(100 * loss, 2) + "% > " + fixed(100 * max_loss, 2) + "%";
}

Json latency_to_json(const LatencyReport& r) {
  return {{"batch", r.batch},         {"threads", r.threads}, {"runs", r.runs},
          {"median_ms", r.median_ms}, {"mean_ms", r.mean_ms}, {"min_ms", r.min_ms},
          {"p90_ms", r.p90_ms}};
}

TrainOptions train_options(const Json& p, const PipelineConfig& c, bool progress,
                           TrainOptions o = {}) {
  o.epochs = p.value("epochs", o.epochs);
  o.batch_size = p.value("batch", o.batch_size);
  o.lr = p.value("lr", o.lr);
  o.optimizer = optimizer_from_string(p.value("optimizer", std::string("momentum")));
  o.momentum = p.value("momentum", o.momentum);
  o.weight_decay = p.value("weight-decay", o.weight_decay);
  o.schedule = lr_schedule_from_string(p.value("lr-schedule", std::string("constant")));
  if (p.contains("boundaries")) o.boundaries = p["boundaries"].get<std::vector<double>>();
  if (p.contains("values")) o.values = p["values"].get<std::vector<double>>();
  o.seed = p.value("seed", o.seed);
  o.max_samples = p.value("max-samples", o.max_samples);
  o.shuffle = !p.value("no-shuffle", false);
  o.drop_last = p.value("drop-last", false);
  o.threads = c.threads;
  o.progress = progress;
  return o;
}

QuantOptions quant_options(const Json& p) {
  QuantOptions o;
  o.weight_algo =
      weight_quant_algo_from_string(p.value("weight-algo", std::string("channel_wise_abs_max")));
  o.act_algo =
      act_quant_algo_from_string(p.value("act-algo", std::string("moving_average_abs_max")));
  o.weight_bits = p.value("weight-bits", o.weight_bits);
  o.act_bits = p.value("act-bits", o.act_bits);
  o.quantize_outputs = !p.value("float-outputs", false);
  if (p.contains("op-types")) o.quantize_op_types = p["op-types"].get<std::vector<std::string>>();
  o.not_quant_pattern = p.value("not-quant-pattern", o.not_quant_pattern);
  o.moving_rate = p.value("moving-rate", o.moving_rate);
  o.window_size = p.value("window-size", o.window_size);
  return o;
}

class Runner {
 public:
  Runner(const PipelineConfig& c, const std::string& run_dir, const PipelineRunOptions& o)
      : c_(c), dir_(fs::weakly_canonical(fs::absolute(run_dir)).string()), o_(o) {}

  PipelineResult run() {
    if (!o_.dry_run) fs::create_directories(dir_);
    Json work = c_.settings();
    work.erase("measure");  // measurements do not change what the stages compute
    const int n = static_cast<int>(c_.stages.size());
    PipelineResult result;
    Json chain = {{"version", 1}, {"settings", work}};
    if (!c_.model.file.empty()) chain["model_digest"] = file_digest(c_.model.file);
    std::string fp = hex64(fnv1a(chain.dump()));
    result.stages.push_back(step(0, n, nullptr, fp, ""));
    std::string model = result.stages.back().model;
    stage_models_["model"] = model;
    for (int i = 0; i < n; ++i) {
      const PipelineStage& s = c_.stages[static_cast<size_t>(i)];
      Json in = {{"prev", fp}, {"kind", s.kind}, {"params", s.params}};
      if (s.params.contains("teacher") && !s.params.contains("teacher_stage"))
        in["teacher_digest"] = file_digest(s.params["teacher"]);
      if (s.kind == "prune" && s.params.contains("sens"))
        in["sens_digest"] = file_digest(s.params["sens"]);
      if (s.kind == "model" && s.params.contains("file"))
        in["model_digest"] = file_digest(s.params["file"]);
      if (s.kind == "nas" && s.params.contains("latency-table"))
        in["table_digest"] = file_digest(s.params["latency-table"]);
      // The auto stage chooses by what the measurements say.
      if (s.kind == "auto") in["measure"] = c_.settings()["measure"];
      fp = hex64(fnv1a(in.dump()));
      if (s.params.contains("from")) model = stage_models_.at(s.params["from"]);
      try {
        result.stages.push_back(step(i + 1, n, &s, fp, model));
      } catch (const Error& e) {
        if (s.pos.file.empty()) throw;  // a rung of an auto stage: the stage says where
        SLIM_FAIL(s.pos.str(), ": stage ", i + 1, " (", s.name, "): ", e.what());
      }
      const auto& r = result.stages.back();
      if (writes_model(s.kind)) model = r.model;
      stage_models_[s.name] = model;
      if (s.kind == "sensitivity") sens_of_[s.name] = last_sens_ = r.dir + "/sens.json";
    }
    result.final_model = model;
    if (!o_.dry_run) {
      Json stages = Json::array();
      for (size_t i = 0; i < result.stages.size(); ++i) {
        const auto& r = result.stages[i];
        stages.push_back({{"index", i},
                          {"name", r.name},
                          {"kind", r.kind},
                          {"dir", r.dir},
                          {"model", r.model},
                          {"reused", r.reused},
                          {"metrics", r.metrics}});
      }
      const Json summary{{"config", c_.path},
                         {"run_dir", dir_},
                         {"final_model", result.final_model},
                         {"stages", stages}};
      write_file_atomic(dir_ + "/summary.json", summary.dump(1) + "\n");
      write_file_atomic(dir_ + "/report.html", pipeline_report_html(summary));
    }
    return result;
  }

 private:
  /// Stage i (0: the input model) with fingerprint fp, reading `model`.
  PipelineStageResult step(int i, int n, const PipelineStage* s, const std::string& fp,
                           const std::string& model) {
    PipelineStageResult r;
    r.name = s ? s->name : "model";
    r.kind = s ? s->kind : "model";
    char num[16];
    std::snprintf(num, sizeof num, "%02d-", i);
    r.dir = dir_ + "/" + num + r.name;
    r.fingerprint = fp;
    const bool writes = !s || writes_model(s->kind);
    r.model = writes ? r.dir + "/model.onnx" : model;
    const std::string metrics_path = r.dir + "/metrics.json";
    const std::string measure_fp = hex64(fnv1a(fp + c_.settings()["measure"].dump()));
    Json old = Json::object();
    if (fs::exists(metrics_path)) old = read_json(metrics_path);
    if (!old.is_object()) old = Json::object();
    const bool done = old.value("fingerprint", "") == fp && (!writes || fs::exists(r.model)) &&
                      (!s || s->kind != "sensitivity" || fs::exists(r.dir + "/sens.json"));
    const bool measured = done && (!writes || old.value("measure_fingerprint", "") == measure_fp);
    const std::string head = "[" + std::to_string(i) + "/" + std::to_string(n) + "] " + r.name;
    if (o_.dry_run) {
      std::printf(
          "%-28s %-12s %s\n", head.c_str(), done ? (measured ? "done" : "re-measure") : "run",
          writes
              ? r.model.c_str()
              : (s && s->kind == "sensitivity" ? (r.dir + "/sens.json").c_str() : r.dir.c_str()));
      if (done) r.metrics = old, r.reused = true;
      return r;
    }
    if (done) {
      r.reused = true;
      r.metrics = old;
      if (!measured) {
        if (o_.progress) std::fprintf(stderr, "%s: done before; measuring again\n", head.c_str());
        r.metrics["measure"] = measure(r.model);
        r.metrics["measure_fingerprint"] = measure_fp;
        write_file_atomic(metrics_path, r.metrics.dump(1) + "\n");
      } else if (o_.progress) {
        std::fprintf(stderr, "%s: done before (same config and inputs), reused\n", head.c_str());
      }
      return r;
    }
    // A folder from another config, or an unfinished run of this stage: the sensitivity table
    // of the same stage resumes, anything else starts over. An auto stage's rungs are runs with
    // fingerprints of their own: kept, so a changed budget reuses what it can.
    const std::string fp_path = r.dir + "/fingerprint";
    if (fs::exists(r.dir) && (!fs::exists(fp_path) || read_file(fp_path) != fp)) {
      if (s && s->kind == "auto") {
        for (const char* f : {"/metrics.json", "/candidates.json", "/model.onnx"})
          fs::remove(r.dir + f);
      } else {
        fs::remove_all(r.dir);
      }
    }
    fs::create_directories(r.dir);
    write_file_atomic(fp_path, fp);
    if (o_.progress)
      std::fprintf(stderr, "%s%s\n", head.c_str(),
                   !s                   ? " (the input model)"
                   : s->name == s->kind ? ""
                                        : (" (" + s->kind + ")").c_str());
    const auto t0 = std::chrono::steady_clock::now();
    Json m = s ? run_stage(*s, model, r) : input_model(c_.model, r.model);
    m["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (writes) {
      if (!m.contains("measure")) m["measure"] = measure(r.model);
      m["measure_fingerprint"] = measure_fp;
    }
    m["fingerprint"] = fp;
    m["name"] = r.name;
    m["kind"] = r.kind;
    write_file_atomic(metrics_path, m.dump(1) + "\n");
    r.metrics = m;
    return r;
  }

  /// Builds (zoo) or copies (file) a model into `out`.
  Json input_model(const PipelineModel& pm, const std::string& out) {
    if (!pm.zoo.empty()) {
      ZooOptions zo;
      zo.input = pm.input;
      zo.classes = pm.classes;
      zo.scale = pm.scale;
      zo.seed = pm.seed;
      onnx_save(zoo_build(pm.zoo, zo), out);
      return {{"zoo", pm.zoo}};
    }
    write_file_atomic(out, read_file(pm.file));
    return {{"file", pm.file}};
  }

  /// FLOPs, params and file size (as slim info), top-1 on the test split (as slim eval) and
  /// latency (as slim bench) of a model file.
  Json measure(const std::string& path) {
    Json m;
    {
      Graph g = load_for_analysis(path);
      const ModelSummary s = summarize(g, path);
      m["flops"] = s.flops;
      m["params"] = s.params.count;
      m["file_bytes"] = s.file_bytes;
      bool int8 = false;
      for (const auto& node : g.nodes) int8 = int8 || node.op_type == "QuantizeLinear";
      m["precision"] = int8 ? "int8" : "float";
    }
    if (c_.measure.eval) {
      Graph g = onnx_load(path);
      EvalOptions eo;
      eo.batch_size = c_.measure.eval_batch;
      eo.max_samples = c_.measure.max_samples;
      eo.threads = c_.threads;
      eo.progress = o_.progress;
      if (!allow_batches(g, path)) eo.batch_size = 1;
      m["eval"] = eval_json(evaluate(g, open_data(c_.data, Split::kTest, g, c_.image), eo));
    }
    if (c_.measure.latency_runs > 0) {
      Graph g = load_for_analysis(path);
      LatencyOptions lo;
      lo.batch = c_.measure.latency_batch;
      lo.threads = c_.threads;
      lo.runs = c_.measure.latency_runs;
      lo.warmup = c_.measure.latency_warmup;
      if (lo.batch != 1 && !allow_batches(g, path)) lo.batch = 1;
      m["latency"] = latency_to_json(measure_latency(g, lo));
    }
    return m;
  }

  Json run_stage(const PipelineStage& s, const std::string& in, const PipelineStageResult& r) {
    const Json& p = s.params;
    if (s.kind == "train") return train_stage(p, in, r.model);
    if (s.kind == "eval") {
      Graph g = onnx_load(in);
      EvalOptions eo;
      eo.batch_size = p.value("batch", eo.batch_size);
      eo.max_samples = p.value("max-samples", eo.max_samples);
      eo.threads = c_.threads;
      eo.progress = o_.progress;
      if (!allow_batches(g, in)) eo.batch_size = 1;
      return {{"model", in},
              {"eval", eval_json(evaluate(g, open_data(c_.data, Split::kTest, g, c_.image), eo))}};
    }
    if (s.kind == "sensitivity") return sensitivity_stage(p, in, r.dir + "/sens.json");
    if (s.kind == "prune") return prune_stage(p, in, r.model);
    if (s.kind == "distill") return distill_stage(p, in, r.model);
    if (s.kind == "quant") return quant_stage(p, in, r);
    if (s.kind == "auto") return auto_stage(s, in, r);
    if (s.kind == "nas") return nas_stage(p, r);
    if (s.kind == "model") {
      PipelineModel pm;
      pm.file = p.value("file", std::string());
      pm.zoo = p.value("zoo", std::string());
      if (p.contains("input")) pm.input = p["input"].get<std::vector<int64_t>>();
      pm.classes = p.value("classes", pm.classes);
      pm.scale = p.value("scale", pm.scale);
      pm.seed = p.value("seed", pm.seed);
      return input_model(pm, r.model);
    }
    if (s.kind == "bench") {
      Graph g = load_for_analysis(in);
      LatencyOptions lo;
      lo.batch = p.value("batch", lo.batch);
      lo.runs = p.value("runs", lo.runs);
      lo.warmup = p.value("warmup", lo.warmup);
      lo.threads = c_.threads;
      if (lo.batch != 1)
        SLIM_CHECK(allow_batches(g, in), in, ": its batch is fixed at 1 and could not be made ",
                   "symbolic; bench it with batch: 1");
      return {{"model", in}, {"latency", latency_to_json(measure_latency(g, lo))}};
    }
    SLIM_ASSERT(false, "stage kind ", s.kind);
  }

  Json train_stage(const Json& p, const std::string& in, const std::string& out) {
    TrainOptions o = train_options(p, c_, o_.progress);
    Graph g = onnx_load(in);
    if (!allow_batches(g, in)) o.batch_size = 1;
    const bool reset = p.value("reset-head", false);
    auto data = open_data(c_.data, Split::kTrain, g, c_.image, !reset);
    Json j;
    if (reset) j["reset_head"] = reset_head(g, data->num_classes(), o.seed);
    j["epochs"] = epochs_json(train(g, data, o));
    onnx_save(g, out);
    return j;
  }

  Json sensitivity_stage(const Json& p, const std::string& in, const std::string& out) {
    SensitivityOptions o;
    if (p.contains("ratios")) o.ratios = p["ratios"].get<std::vector<double>>();
    o.criterion = criterion_from_string(p.value("criterion", std::string("l1_norm")));
    o.align = p.value("align", o.align);
    o.eval.batch_size = p.value("batch", o.eval.batch_size);
    o.eval.max_samples = p.value("max-samples", o.eval.max_samples);
    o.eval.threads = c_.threads;
    o.eval.progress = false;  // one line per evaluation instead
    o.progress = o_.progress;
    o.output = out;
    Graph g = load_for_analysis(in);
    if (!allow_batches(g, in)) o.eval.batch_size = 1;
    if (p.contains("params")) {
      o.params = p["params"].get<std::vector<std::string>>();
    } else if (p.contains("params-regex")) {
      o.params = prunable_params_matching(g, p["params-regex"]);
    } else {
      o.params = prunable_params(g);
      SLIM_CHECK(!o.params.empty(), in, ": no prunable conv");
    }
    sensitivity(g, open_data(c_.data, Split::kTest, g, c_.image), o);
    return {{"model", in}, {"params", o.params}, {"sensitivity", read_json(out)}};
  }

  Json prune_stage(const Json& p, const std::string& in, const std::string& out) {
    PruneOptions o;
    o.criterion = criterion_from_string(p.value("criterion", std::string("l1_norm")));
    o.align = p.value("align", o.align);
    o.lazy = p.value("lazy", false);
    Graph g = load_for_analysis(in, p.value("input", std::string()));
    PruneSelection sel;
    if (p.contains("ratios")) sel.ratios = p["ratios"].get<std::map<std::string, double>>();
    sel.sens =
        p.contains("sens_stage") ? sens_of_.at(p["sens_stage"]) : p.value("sens", std::string());
    if (sel.sens.empty() && (p.contains("loss") || p.contains("flops-target")))
      sel.sens = last_sens_;
    sel.loss = p.value("loss", -1.0);
    sel.flops_target = p.value("flops-target", -1.0);
    sel.uniform = p.value("uniform", -1.0);
    sel.params_regex = p.value("params-regex", std::string());
    sel.max_ratio = p.value("max-ratio", sel.max_ratio);
    const int64_t flops_before = summarize(g, in).flops;
    const int64_t params_before = count_params(g).count;
    const SelectedRatios chosen = select_prune_ratios(g, sel, o);
    o.ratios = chosen.ratios;
    PruneReport rep = prune_channels(g, o);
    onnx_save(g, out);
    Json j{{"sens", sel.sens},
           {"ratios", o.ratios},
           {"flops_before", flops_before},
           {"flops_after", summarize(g, out).flops},
           {"params_before", params_before},
           {"params_after", count_params(g).count},
           {"unaligned", rep.unaligned}};
    if (chosen.threshold >= 0) j["threshold"] = chosen.threshold;
    j["pruned"] = Json::array();
    for (const auto& g2 : rep.pruned)
      j["pruned"].push_back({{"master", g2.master},
                             {"params", g2.params},
                             {"channels", g2.channels},
                             {"kept", g2.kept}});
    j["skipped"] = Json::array();
    for (const auto& sk : rep.skipped)
      j["skipped"].push_back(
          {{"params", sk.params}, {"channels", sk.channels}, {"reason", sk.reason}});
    return j;
  }

  /// Auto-compression (pipeline.h). Each rung is a small pipeline run in RUN_DIR/NN-auto/RUNG
  /// (reused and resumed as any run); its last model is a candidate, measured as every model is.
  /// After each rung, if a candidate meets the budget the ladder stops (`exhaustive: true` runs
  /// every rung).
  Json auto_stage(const PipelineStage& st, const std::string& in, const PipelineStageResult& r) {
    const Json& p = st.params;
    const double max_loss = p.value("max-loss", 0.01);
    const double max_ms = p.value("max-latency-ms", 0.0);
    const int64_t max_bytes = p.value("max-size", int64_t{0});
    SLIM_CHECK(c_.measure.eval,
               "auto: needs measure: {eval: true} (candidates are compared "
               "by top-1)");
    SLIM_CHECK(max_ms <= 0 || c_.measure.latency_runs > 0,
               "auto: max-latency-ms needs measure: {latency-runs: N} with N > 0");
    const Json base = measure(in);
    const double base_top1 = base["eval"]["top1"];
    SLIM_CHECK(base_top1 > 0,
               "auto: the model to compress has top-1 0 on the test data: train "
               "it first (a train stage before auto)");
    const int64_t seed = p.value("seed", int64_t{0});
    const int64_t batch = p.value("batch", int64_t{128});
    const int64_t max_samples = p.value("max-samples", int64_t{0});
    auto stage = [&](const std::string& kind, const std::string& name, Json params) {
      PipelineStage s;
      s.kind = kind;
      s.name = name;
      s.params = std::move(params);
      s.pos = st.pos;
      return s;
    };
    auto qat = [&] {
      return stage("quant", "qat",
                   {{"mode", "qat"},
                    {"epochs", p.value("qat-epochs", int64_t{1})},
                    {"lr", p.value("qat-lr", 0.001)},
                    {"batch", batch},
                    {"max-samples", max_samples},
                    {"seed", seed},
                    {"teacher", in}});
    };
    Json candidates = Json::array(), chosen;
    Json j{{"float", {{"top1", base_top1}, {"file_bytes", base["file_bytes"]}}},
           {"budget", {{"max_loss", max_loss}}}};
    if (base.contains("latency")) j["float"]["latency_ms"] = base["latency"]["median_ms"];
    if (max_ms > 0) j["budget"]["max_latency_ms"] = max_ms;
    if (max_bytes > 0) j["budget"]["max_size"] = max_bytes;
    // Rewritten after every rung: a killed or failed ladder still shows what it tried.
    auto save_candidates = [&] {
      j["candidates"] = candidates;
      if (!chosen.is_null()) j["chosen"] = chosen["name"];
      write_file_atomic(r.dir + "/candidates.json", j.dump(1) + "\n");
    };
    auto run_rung = [&](const std::string& rung, std::vector<PipelineStage> stages,
                        const std::string& what) {
      PipelineConfig sub = c_;
      sub.model = PipelineModel{};
      sub.model.file = in;
      sub.stages = std::move(stages);
      for (auto& st2 : sub.stages) st2.pos = ConfigPos{};  // errors name the rung instead
      if (o_.progress) std::fprintf(stderr, "auto: %s (%s)\n", rung.c_str(), what.c_str());
      PipelineResult res;
      try {
        res = Runner(sub, r.dir + "/" + rung, o_).run();
      } catch (const Error& e) {
        // A rung that fails (e.g. a model some strategy cannot take) is a candidate that missed.
        candidates.push_back({{"name", rung},
                              {"what", what},
                              {"meets", false},
                              {"why_not", std::string("failed: ") + e.what()}});
        save_candidates();
        return;
      }
      const Json& m = res.stages.back().metrics["measure"];
      Json c{{"name", rung},
             {"what", what},
             {"model", res.final_model},
             {"top1", m["eval"]["top1"]},
             {"loss", (base_top1 - m["eval"]["top1"].get<double>()) / base_top1},
             {"file_bytes", m["file_bytes"]},
             {"flops", m["flops"]},
             {"precision", m["precision"]}};
      if (m.contains("latency")) c["latency_ms"] = m["latency"]["median_ms"];
      std::string why;
      if (!(c["loss"].get<double>() <= max_loss))
        why += fmt_loss(c["loss"].get<double>(), max_loss);
      if (max_ms > 0 && m["latency"]["batch"].get<int64_t>() != c_.measure.latency_batch)
        why += (why.empty() ? "" : "; ") + std::string("latency measured at batch 1 only (the ") +
               "model's batch is fixed)";
      if (max_ms > 0 && c["latency_ms"].get<double>() > max_ms)
        why += (why.empty() ? "" : "; ") + std::string("latency ") +
               fixed(c["latency_ms"].get<double>(), 3) + " ms > " + fixed(max_ms, 3);
      if (max_bytes > 0 && c["file_bytes"].get<int64_t>() > max_bytes)
        why += (why.empty() ? "" : "; ") + std::string("size ") +
               std::to_string(c["file_bytes"].get<int64_t>()) + " > " + std::to_string(max_bytes);
      c["meets"] = why.empty();
      if (!why.empty()) c["why_not"] = why;
      c["measure"] = m;
      if (why.empty() &&
          (chosen.is_null() || c["top1"].get<double>() > chosen["top1"].get<double>()))
        chosen = c;
      candidates.push_back(c);
      save_candidates();
    };
    const bool exhaustive = p.value("exhaustive", false);
    auto done = [&] { return !exhaustive && !chosen.is_null(); };
    // 1. Post-training quantization with each calibration method.
    for (const auto& algo :
         p.value("algos", std::vector<std::string>{"hist", "mse", "kl", "avg", "abs_max"}))
      run_rung("ptq-" + algo,
               {stage("quant", "ptq",
                      {{"mode", "ptq"},
                       {"algo", algo},
                       {"batches", p.value("calib-batches", int64_t{32})}})},
               "int8 post-training, " + algo + " calibration");
    // 2. Quant-aware training with distillation from the float model.
    if (!done()) run_rung("qat-distill", {qat()}, "int8 QAT, distilled from the float model");
    // 3. Prune by sensitivity to a FLOPs reduction, fine-tune with distillation, QAT with
    //    distillation; reductions in turn until one meets the budget.
    std::string sens;
    for (double target : p.value("flops-targets", std::vector<double>{0.3, 0.5, 0.7})) {
      if (done()) break;
      std::vector<PipelineStage> stages;
      Json prune{{"flops-target", target}, {"align", p.value("align", int64_t{8})}};
      if (sens.empty()) {
        Json sp{{"max-samples", p.value("sens-max-samples", int64_t{2000})}};
        if (p.contains("sens-ratios")) sp["ratios"] = p["sens-ratios"];
        stages.push_back(stage("sensitivity", "sensitivity", sp));
      } else {
        prune["sens"] = sens;
      }
      stages.push_back(stage("prune", "prune", prune));
      stages.push_back(stage("distill", "fine-tune",
                             {{"teacher", in},
                              {"epochs", p.value("finetune-epochs", int64_t{1})},
                              {"lr", p.value("lr", 0.01)},
                              {"batch", batch},
                              {"max-samples", max_samples},
                              {"seed", seed}}));
      stages.push_back(qat());
      const std::string rung = "prune-" + fixed(target, 2);
      run_rung(rung, stages,
               "prune " + fixed(100 * target, 0) +
                   "% FLOPs by sensitivity, fine-tune and QAT, "
                   "both distilled from the float model");
      if (sens.empty()) sens = r.dir + "/" + rung + "/01-sensitivity/sens.json";
    }
    save_candidates();
    if (chosen.is_null()) {
      // The most accurate candidates, to say how close the ladder came.
      std::vector<Json> sorted(candidates.begin(), candidates.end());
      std::stable_sort(sorted.begin(), sorted.end(), [](const Json& a, const Json& b) {
        return a.value("top1", -1.0) > b.value("top1", -1.0);
      });
      std::string best;
      for (size_t i = 0; i < std::min<size_t>(3, sorted.size()); ++i)
        best += (i ? "; " : "") + sorted[i]["name"].get<std::string>() +
                (sorted[i].contains("top1") ? " top-1 " + fixed(sorted[i]["top1"].get<double>(), 4)
                                            : std::string()) +
                " (" + sorted[i]["why_not"].get<std::string>() + ")";
      SLIM_FAIL("auto: no candidate of the ladder meets the budget (float top-1 ",
                fixed(base_top1, 4),
                base.contains("latency")
                    ? ", " + fixed(base["latency"]["median_ms"].get<double>(), 3) + " ms"
                    : std::string(),
                "); the most accurate: ", best, "; every candidate in ", r.dir, "/candidates.json");
    }
    write_file_atomic(r.model, read_file(chosen["model"]));
    j["measure"] = chosen["measure"];  // the candidate's own measurement, not a second one
    return j;
  }

  /// slim nas as a stage: the search runs (and resumes) in RUN_DIR/NN-NAME/search; the stage's
  /// model is the best candidate (trained with the search's short budget).
  Json nas_stage(const Json& p, const PipelineStageResult& r) {
    NasOptions o;
    o.space = p["space"];
    o.input = p.contains("input") ? p["input"].get<std::vector<int64_t>>() : c_.model.input;
    o.train = train_options(p, c_, o_.progress);
    o.steps = p.value("steps", o.steps);
    o.limits.max_flops = p.value("max-flops", o.limits.max_flops);
    o.limits.max_params = p.value("max-params", o.limits.max_params);
    o.limits.max_size = p.value("max-size", o.limits.max_size);
    o.limits.max_latency_ms = p.value("max-latency-ms", o.limits.max_latency_ms);
    o.size_format = p.value("size-format", o.size_format);
    if (o.size_format == "int8") o.model_size = int8_weight_file_size;
    o.latency_batch = p.value("latency-batch", o.latency_batch);
    o.latency_threads = p.value("latency-threads", c_.threads);
    o.latency_runs = p.value("latency-runs", o.latency_runs);
    if (p.contains("latency-table")) {
      auto t = std::make_shared<LatencyTable>(latency_table_load(p["latency-table"]));
      o.latency_batch = t->batch;
      o.latency_table = t;
    }
    o.latency_weight = p.value("latency-weight", o.latency_weight);
    o.target_latency_ms = p.value("target-latency-ms", o.target_latency_ms);
    o.val_samples = p.value("val-samples", o.val_samples);
    o.eval_batch = p.value("eval-batch", o.eval_batch);
    o.controller.init_temperature = p.value("init-temperature", o.controller.init_temperature);
    o.controller.reduce_rate = p.value("reduce-rate", o.controller.reduce_rate);
    o.controller.seed = o.train.seed;
    o.max_draws = p.value("max-draws", o.max_draws);
    o.output_dir = r.dir + "/search";
    o.progress = o_.progress;
    // The data is read at the search's input: a structure-only build tells the folder reader
    // the size and channels.
    ZooOptions zo;
    zo.input = o.input;
    zo.classes = p.value("classes", int64_t{1});
    zo.draw_weights = false;
    auto space = search_space_make(o.space);
    Graph probe = space->build(space->init_tokens(), zo);
    auto data = open_data(c_.data, Split::kTrain, probe, c_.image, /*labels=*/false);
    o.classes = p.value("classes", data->num_classes());
    o.data_description = data->describe();
    NasResult res = nas_search(o, data);
    write_file_atomic(r.model, read_file(o.output_dir + "/best.onnx"));
    Json j{{"space", o.space},
           {"best_tokens", res.best_tokens},
           {"best_reward", res.best_reward},
           {"rewarded", res.rewarded},
           {"rejected", res.rejected},
           {"candidates", Json::array()}};
    for (const auto& c : res.candidates) j["candidates"].push_back(nas_candidate_json(c));
    return j;
  }

  /// A teacher given as an earlier stage's name or as a file.
  std::string teacher_of(const Json& p) const {
    return p.contains("teacher_stage") ? stage_models_.at(p["teacher_stage"])
                                       : p["teacher"].get<std::string>();
  }

  Json distill_stage(const Json& p, const std::string& in, const std::string& out) {
    const std::string teacher_path = teacher_of(p);
    DistillOptions o;
    o.train = train_options(p, c_, o_.progress);
    o.task_weight = p.value("task-weight", o.task_weight);
    o.adapters = p.value("adapter", false);
    o.merge.prefix = p.value("prefix", o.merge.prefix);
    const bool t2 = p.value("t2-scale", false);
    for (const auto& m : p.value("map", std::vector<std::string>{})) {
      auto eq = m.find('=');
      SLIM_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < m.size(), "map '", m,
                 "': expected teacher_input=student_input");
      o.merge.data_name_map[m.substr(0, eq)] = m.substr(eq + 1);
    }
    for (const auto& spec : p.value("loss", std::vector<std::string>{})) {
      o.losses.push_back(DistillLoss::parse(spec));
      o.losses.back().scale_t2 = t2;
    }
    Graph teacher = onnx_load(teacher_path);
    Graph student = onnx_load(in);
    if (o.losses.empty())
      o.losses.push_back(distill_default_loss(teacher, student, o.merge.prefix, t2));
    const bool batches = allow_batches(teacher, teacher_path);
    if (!allow_batches(student, in) || !batches) o.train.batch_size = 1;
    DistillReport r =
        distill(teacher, student, open_data(c_.data, Split::kTrain, student, c_.image), o);
    onnx_save(student, out);
    return {{"teacher", teacher_path},
            {"losses", r.losses},
            {"adapters", r.adapters},
            {"epochs", epochs_json(r.epochs)}};
  }

  Json quant_stage(const Json& p, const std::string& in, const PipelineStageResult& r) {
    const std::string mode = p["mode"];
    Graph g = onnx_load(in);
    Json j{{"mode", mode}};
    if (mode == "weight") {
      WeightOnlyReport w = quantize_weights(g, p.value("bits", 8), quant_options(p));
      onnx_save(g, r.model);
      j["weights"] = w.weights;
      j["skipped"] = w.skipped;
      return j;
    }
    if (mode == "ptq") {
      PtqOptions o;
      o.quant = quant_options(p);
      o.calib.algo = calib_algo_from_string(p.value("algo", std::string("hist")));
      o.calib.batches = p.value("batches", o.calib.batches);
      o.calib.batch_size = p.value("batch-size", o.calib.batch_size);
      o.calib.max_samples = p.value("max-samples", o.calib.max_samples);
      o.calib.kl_max_clip = p.value("kl-max-clip", o.calib.kl_max_clip);
      o.calib.hist_percent = p.value("hist-percent", o.calib.hist_percent);
      o.calib.threads = c_.threads;
      o.fold_bn = !p.value("no-fold-bn", false);
      o.bias_correction = p.value("bias-correction", false);
      if (!allow_batches(g, in)) o.calib.batch_size = 1;
      ScaleTable table = ptq_calibrate(g, open_data(c_.data, Split::kTrain, g, c_.image, false), o);
      table.model = in;
      scale_table_save(table, r.dir + "/scales.json");
      QdqReport q = ptq_apply(g, table, o);
      onnx_save(g, r.model);
      j["algo"] = table.algo;
      j["calibration_samples"] = table.samples;
      j["nodes"] = q.nodes;
      j["activations"] = q.activations;
      j["skipped"] = q.skipped;
      return j;
    }
    QatOptions o;
    o.quant = quant_options(p);
    TrainOptions t;
    t.lr = 0.001;  // slim quant qat's default: fine-tuning a trained model
    o.train = train_options(p, c_, o_.progress, t);
    o.fold_bn_before = p.value("fold-bn", std::string("before")) == "before";
    if (!allow_batches(g, in)) o.train.batch_size = 1;
    QatReport q;
    auto data = open_data(c_.data, Split::kTrain, g, c_.image);
    if (p.contains("teacher")) {  // QAT with distillation
      const std::string teacher_path = teacher_of(p);
      Graph teacher = onnx_load(teacher_path);
      if (!allow_batches(teacher, teacher_path)) o.train.batch_size = 1;
      DistillOptions d;
      d.train = o.train;
      d.task_weight = p.value("task-weight", d.task_weight);
      const bool t2 = p.value("t2-scale", false);
      for (const auto& spec : p.value("loss", std::vector<std::string>{})) {
        d.losses.push_back(DistillLoss::parse(spec));
        d.losses.back().scale_t2 = t2;
      }
      q = quant_aware_distill(g, teacher, data, o, d, t2);
      j["teacher"] = teacher_path;
    } else {
      q = quant_aware_train(g, data, o);
    }
    onnx_save(g, r.model);
    j["epochs"] = epochs_json(q.epochs);
    j["nodes"] = q.qdq.nodes;
    j["skipped"] = q.qdq.skipped;
    return j;
  }

  const PipelineConfig& c_;
  std::string dir_;
  PipelineRunOptions o_;
  std::map<std::string, std::string> stage_models_;
  std::string last_sens_;
  std::map<std::string, std::string> sens_of_;  ///< sensitivity stage name -> its table
};

}  // namespace

PipelineResult pipeline_run(const PipelineConfig& config, const std::string& run_dir,
                            const PipelineRunOptions& options) {
  return Runner(config, run_dir, options).run();
}

}  // namespace slim
