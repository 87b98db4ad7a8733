#include "slim/nas/search.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "slim/analysis/flops.h"
#include "slim/analysis/model_stats.h"
#include "slim/dist/dist.h"
#include "slim/onnx/onnx_io.h"
#include "slim/train/progress.h"

namespace slim {

namespace fs = std::filesystem;

namespace {

using Json = nlohmann::json;

/// What determines the search's results (so a resumed run must match): everything but the step
/// count, the worker count and the thread counts.
Json options_json(const NasOptions& o) {
  const TrainOptions& t = o.train;
  return Json{
      {"space", o.space},
      {"input", o.input},
      {"classes", o.classes},
      {"max_flops", o.limits.max_flops},
      {"max_params", o.limits.max_params},
      {"max_size", o.limits.max_size},
      {"size_format", o.size_format},
      {"max_latency_ms", o.limits.max_latency_ms},
      {"latency_batch", o.latency_batch},
      {"latency_warmup", o.latency_warmup},
      {"latency_runs", o.latency_runs},
      {"latency_table", o.latency_table ? "table" : "measured"},
      {"epochs", t.epochs},
      {"batch", t.batch_size},
      {"lr", t.lr},
      {"optimizer", static_cast<int>(t.optimizer)},
      {"momentum", t.momentum},
      {"weight_decay", t.weight_decay},
      {"lr_schedule", static_cast<int>(t.schedule)},
      {"boundaries", t.boundaries},
      {"values", t.values},
      {"train_seed", t.seed},
      {"max_samples", t.max_samples},
      {"shuffle", t.shuffle},
      {"drop_last", t.drop_last},
      {"val_samples", o.val_samples},
      {"eval_batch", o.eval_batch},
      {"latency_weight", o.latency_weight},
      {"target_latency_ms", o.target_latency_ms},
      {"init_temperature", o.controller.init_temperature},
      {"reduce_rate", o.controller.reduce_rate},
      {"max_tries", o.controller.max_tries},
      {"seed", o.controller.seed},
      {"data", o.data_description},
  };
}

}  // namespace

nlohmann::json nas_candidate_json(const NasCandidate& c) {
  using Json = nlohmann::json;
  Json j{{"step", c.step},        {"tokens", c.tokens}, {"flops", c.flops},
         {"params", c.params},    {"size", c.size},     {"latency_ms", c.latency_ms},
         {"rejected", c.rejected}};
  if (c.rejected) {
    j["reason"] = c.reason;
    j["violation"] = c.violation;
  } else {
    j["val_top1"] = c.val_top1;
    j["reward"] = c.reward;
    j["accepted"] = c.accepted;
    j["temperature"] = c.temperature;
    j["seconds"] = c.seconds;
  }
  return j;
}

namespace {

NasCandidate candidate_from_json(const Json& j) {
  NasCandidate c;
  c.step = j.at("step").get<int64_t>();
  c.tokens = j.at("tokens").get<Tokens>();
  c.flops = j.at("flops").get<int64_t>();
  c.params = j.at("params").get<int64_t>();
  c.size = j.at("size").get<int64_t>();
  c.latency_ms = j.at("latency_ms").get<double>();
  c.rejected = j.at("rejected").get<bool>();
  if (c.rejected) {
    c.reason = j.at("reason").get<std::string>();
    c.violation = j.at("violation").get<double>();
  } else {
    c.val_top1 = j.at("val_top1").get<double>();
    c.reward = j.at("reward").get<double>();
    c.accepted = j.at("accepted").get<bool>();
    c.temperature = j.at("temperature").get<double>();
    c.seconds = j.at("seconds").get<double>();
  }
  return c;
}

/// One line per candidate, for people (the checkpoint is the record).
std::string log_text(const std::vector<NasCandidate>& cands) {
  std::ostringstream s;
  s << "# step  tokens  flops  params  size  latency_ms  val_top1  reward  accepted  T  seconds"
       "  | rejected: reason\n";
  for (const auto& c : cands) {
    s << c.step << "  " << tokens_to_string(c.tokens) << "  " << c.flops << "  " << c.params << "  "
      << c.size << "  " << c.latency_ms;
    if (c.rejected) {
      s << "  | rejected: " << c.reason << "\n";
    } else {
      char buf[160];
      std::snprintf(buf, sizeof buf, "  %.4f  %.4f  %s  %.4g  %.1f\n", c.val_top1, c.reward,
                    c.accepted ? "yes" : "no", c.temperature, c.seconds);
      s << buf;
    }
  }
  return s.str();
}

std::string fmt_ms(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", ms);
  return buf;
}

void check_options(const NasOptions& o) {
  SLIM_CHECK(o.steps >= 1, "nas: steps must be at least 1, got ", o.steps);
  SLIM_CHECK(!o.output_dir.empty(), "nas: an output directory is required");
  SLIM_CHECK(o.limits.max_flops >= 0 && o.limits.max_params >= 0 && o.limits.max_size >= 0 &&
                 o.limits.max_latency_ms >= 0,
             "nas: limits must be >= 0 (0 = none)");
  SLIM_CHECK(o.latency_batch >= 1, "nas: latency batch must be >= 1, got ", o.latency_batch);
  SLIM_CHECK(o.latency_runs >= 1, "nas: latency runs must be >= 1, got ", o.latency_runs);
  SLIM_CHECK(o.latency_weight >= 0, "nas: latency weight must be >= 0, got ", o.latency_weight);
  SLIM_CHECK(o.latency_weight == 0 || o.target_latency_ms > 0 || o.limits.max_latency_ms > 0,
             "nas: a latency weight needs a target latency (or a latency limit)");
  SLIM_CHECK(o.max_draws >= 1, "nas: max draws must be >= 1, got ", o.max_draws);
  SLIM_CHECK(o.eval_batch >= 1, "nas: eval batch must be >= 1, got ", o.eval_batch);
  SLIM_CHECK(!o.latency_table || o.latency_table->batch == o.latency_batch, "nas: the latency ",
             "table was measured at batch ", o.latency_table ? o.latency_table->batch : 0,
             ", the search's latency batch is ", o.latency_batch);
}

}  // namespace

NasCandidate nas_measure(const SearchSpace& space, const Tokens& tokens, const NasOptions& o,
                         Graph* graph) {
  NasCandidate c;
  c.tokens = tokens;
  ZooOptions zo;
  zo.input = o.input;
  zo.classes = o.classes;
  zo.seed = o.train.seed;
  zo.draw_weights = false;  // structure first: the cheap limits need no weights
  Graph g = space.build(tokens, zo);
  c.flops = count_flops(g).total;
  c.params = count_params(g).count;
  const NasLimits& l = o.limits;
  auto reject = [&](const std::string& reason, double value, double limit) {
    c.rejected = true;
    c.reason = reason;
    c.violation = value / limit;
    return c;
  };
  if (l.max_flops > 0 && c.flops > l.max_flops)
    return reject("flops " + std::to_string(c.flops) + " > max " + std::to_string(l.max_flops),
                  c.flops, l.max_flops);
  if (l.max_params > 0 && c.params > l.max_params)
    return reject("params " + std::to_string(c.params) + " > max " + std::to_string(l.max_params),
                  c.params, l.max_params);
  c.size = o.model_size ? o.model_size(g) : static_cast<int64_t>(onnx_serialize(g).size());
  if (l.max_size > 0 && c.size > l.max_size)
    return reject("size " + std::to_string(c.size) + " > max " + std::to_string(l.max_size) +
                      " bytes (" + o.size_format + ")",
                  c.size, l.max_size);
  // Measured for every candidate that is trained (the log's latency column), and before
  // training when it is limited or shapes the reward.
  const bool need_latency = l.max_latency_ms > 0 || o.latency_weight > 0 || graph != nullptr;
  if (need_latency && o.latency_table) c.latency_ms = latency_predict(*o.latency_table, g);
  if ((need_latency && !o.latency_table) || graph) {
    zo.draw_weights = true;
    g = space.build(tokens, zo);
  }
  if (need_latency) {
    if (!o.latency_table) {
      LatencyOptions lo;
      lo.batch = o.latency_batch;
      lo.threads = o.latency_threads;
      lo.warmup = o.latency_warmup;
      lo.runs = o.latency_runs;
      c.latency_ms = measure_latency(g, lo).median_ms;
    }
    if (l.max_latency_ms > 0 && c.latency_ms > l.max_latency_ms)
      return reject(
          "latency " + fmt_ms(c.latency_ms) + " ms > max " + fmt_ms(l.max_latency_ms) + " ms",
          c.latency_ms, l.max_latency_ms);
  }
  if (graph) *graph = std::move(g);
  return c;
}

namespace {

/// A rank other than 0 in a distributed search: trains and scores the candidates rank 0 hands
/// it until told to stop.
NasResult nas_worker(const NasOptions& o, dist::Group& group, const SearchSpace& space,
                     const std::shared_ptr<Dataset>& train_part,
                     const std::shared_ptr<Dataset>& val_part) {
  TrainOptions topts = o.train;
  topts.progress = false;
  topts.group = nullptr;
  EvalOptions eo;
  eo.batch_size = o.eval_batch;
  eo.threads = o.train.threads;
  eo.progress = false;
  const std::string me = std::to_string(group.rank());
  for (int64_t seq = 0;; ++seq) {
    const std::string k = me + "/" + std::to_string(seq);
    const Json task =
        Json::parse(group.wait_for("nas/task/" + k, "nas (waiting for a candidate from rank 0)"));
    if (task.contains("stop")) break;
    const auto t0 = std::chrono::steady_clock::now();
    ZooOptions zo;
    zo.input = o.input;
    zo.classes = o.classes;
    zo.seed = o.train.seed;
    Graph g = space.build(task.at("tokens").get<Tokens>(), zo);
    train(g, train_part, topts);
    const double val = evaluate(g, val_part, eo).top1;
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    group.set("nas/model/" + k, onnx_serialize(g));
    group.set("nas/result/" + k, Json{{"val_top1", val}, {"seconds", secs}}.dump());
  }
  group.barrier("the end of the search");
  return NasResult{};
}

}  // namespace

NasResult nas_search(const NasOptions& o, const std::shared_ptr<Dataset>& train_data) {
  check_options(o);
  SLIM_CHECK(train_data != nullptr, "nas: no training data");
  const auto start = std::chrono::steady_clock::now();
  auto space = search_space_make(o.space);
  {
    // Input, classes and the data's shape, before anything is written.
    ZooOptions zo;
    zo.input = o.input;
    zo.classes = o.classes;
    zo.draw_weights = false;
    space->build(space->init_tokens(), zo);
    SLIM_CHECK(train_data->image_shape() == o.input, "nas: ", train_data->describe(),
               " has images of ", shape_to_string(train_data->image_shape()),
               ", the search's input is ", shape_to_string(o.input));
    SLIM_CHECK(train_data->num_classes() <= o.classes, "nas: ", train_data->describe(), " has ",
               train_data->num_classes(), " classes, the candidates ", o.classes);
  }
  auto [train_part, val_part] =
      dataset_split_validation(train_data, o.val_samples, o.controller.seed);
  if (o.group && o.group->size() > 1 && o.group->rank() != 0)
    return nas_worker(o, *o.group, *space, train_part, val_part);

  const std::string ck_path = o.output_dir + "/checkpoint.json";
  const Json want = options_json(o);
  std::vector<NasCandidate> cands;
  std::unique_ptr<SaController> ctl;
  if (fs::exists(ck_path)) {
    Json ck;
    try {
      std::ifstream in(ck_path);
      ck = Json::parse(in);
      const Json& got = ck.at("options");
      for (const auto& [key, value] : want.items())
        SLIM_CHECK(got.contains(key) && got.at(key) == value, ck_path,
                   " was written by a search with ", key, " = ",
                   got.contains(key) ? got.at(key).dump() : "(none)", ", this one has ",
                   value.dump(), ": resume with the same options or use another output directory");
      ctl = std::make_unique<SaController>(SaController::from_json(ck.at("controller"), ck_path));
      for (const auto& c : ck.at("candidates")) cands.push_back(candidate_from_json(c));
    } catch (const Json::exception& e) {
      SLIM_FAIL(ck_path, ": not a NAS checkpoint (", error_brief(e),
                "); move it away to start a new search");
    }
    ctl->set_workers(o.controller.workers);
  } else {
    fs::create_directories(o.output_dir);
    ctl = std::make_unique<SaController>(space->range_table(), space->init_tokens(), o.controller);
  }

  auto save = [&] {
    Json ck{{"version", 1}, {"options", want}, {"controller", ctl->to_json()}};
    ck["candidates"] = Json::array();
    for (const auto& c : cands) ck["candidates"].push_back(nas_candidate_json(c));
    write_file_atomic(ck_path, ck.dump(1) + "\n");
    write_file_atomic(o.output_dir + "/search.log", log_text(cands));
  };

  NasResult result;
  int64_t rewarded = 0, rejected_in_a_row = 0, trained_images = 0;
  std::map<std::string, int64_t> reasons;  // of the current run of rejections
  double base_violation = std::numeric_limits<double>::infinity();
  // The counts above after candidate c, whether replayed from the checkpoint or new. Returns
  // true when a rejected c is the least violating so far before any reward: the base walks there.
  auto tally = [&](const NasCandidate& c) {
    if (!c.rejected) {
      ++rewarded;
      rejected_in_a_row = 0;
      reasons.clear();
      return false;
    }
    ++rejected_in_a_row;
    ++reasons[c.reason.substr(0, c.reason.find(' '))];
    if (rewarded > 0 || !(c.violation < base_violation)) return false;
    base_violation = c.violation;
    return true;
  };
  for (const auto& c : cands) tally(c);
  Progress progress("nas", o.steps, 1);
  progress.set_enabled(o.progress);
  TrainOptions topts = o.train;
  topts.progress = false;
  topts.group = nullptr;  // each rank trains its own candidate
  EvalOptions eo;
  eo.batch_size = o.eval_batch;
  eo.threads = o.train.threads;
  eo.progress = false;
  dist::Group* group = o.group && o.group->size() > 1 ? o.group : nullptr;
  const int world = group ? group->size() : 1;
  const int64_t images_per_candidate =
      std::min<int64_t>(topts.max_samples > 0 ? topts.max_samples : INT64_MAX, train_part->size()) *
      topts.epochs;
  std::set<Tokens> in_flight;  // handed to a rank, not yet rewarded
  // The next candidate that meets the limits (a pending one from a resumed checkpoint first);
  // rejections are logged as they come. `g` receives the built candidate.
  auto draw = [&](Graph* g) -> NasCandidate {
    for (;;) {
      Tokens t;
      bool resumed = false;
      for (const auto& p : ctl->pending())
        if (!in_flight.count(p)) {
          t = p;
          resumed = true;
          break;
        }
      if (!resumed) t = ctl->next();
      NasCandidate c = nas_measure(*space, t, o, g);
      c.step = rewarded;
      if (!c.rejected) {
        in_flight.insert(t);
        return c;
      }
      ctl->discard(t);
      if (tally(c)) ctl->move_base(t);
      cands.push_back(c);
      save();
      if (rejected_in_a_row >= o.max_draws) {
        std::string why;
        for (const auto& [what, n] : reasons)
          why += (why.empty() ? "" : ", ") + what + " over its limit " + std::to_string(n) + "x";
        SLIM_FAIL("nas: ", rejected_in_a_row, " candidates in a row broke a limit (", why,
                  "; the last: ", c.reason, "): no candidate near ",
                  tokens_to_string(ctl->base_tokens()),
                  " meets the limits; raise them (in a new output directory) or start from "
                  "smaller tokens");
      }
    }
  };
  // A trained candidate's score goes to the controller; `save_best` writes its model.
  auto reward = [&](NasCandidate c, double val_top1, double seconds,
                    const std::function<void()>& save_best) {
    c.val_top1 = val_top1;
    c.reward = c.val_top1;
    if (o.latency_weight > 0) {
      const double target = o.target_latency_ms > 0 ? o.target_latency_ms : o.limits.max_latency_ms;
      c.reward *= std::pow(c.latency_ms / target, -o.latency_weight);
    }
    const bool best = !ctl->has_reward() || c.reward > ctl->best_reward();
    SaRecord rec = ctl->update(c.tokens, c.reward);
    in_flight.erase(c.tokens);
    c.step = rewarded;
    c.accepted = rec.accepted;
    c.temperature = rec.temperature;
    c.seconds = seconds;
    cands.push_back(c);
    tally(c);
    if (best) {
      save_best();
      Json b = nas_candidate_json(c);
      b["space"] = o.space;
      b["input"] = o.input;
      b["classes"] = o.classes;
      write_file_atomic(o.output_dir + "/best.json", b.dump(1) + "\n");
    }
    save();
    char info[200];
    std::snprintf(info, sizeof info, "val %.4f reward %.4f%s best %.4f T %.3g", c.val_top1,
                  c.reward, c.accepted ? " accepted" : "", ctl->best_reward(), rec.temperature);
    trained_images += images_per_candidate;
    progress.update(rewarded, trained_images, tokens_to_string(c.tokens) + " " + info);
  };
  auto seconds_since = [](std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  struct Slot {
    bool busy = false;
    NasCandidate c;
    int64_t seq = 0;
  };
  std::vector<Slot> slots(world);
  auto key = [](const char* what, int r, int64_t seq) {
    return std::string("nas/") + what + "/" + std::to_string(r) + "/" + std::to_string(seq);
  };
  auto last_check = std::chrono::steady_clock::now();
  while (rewarded < o.steps) {
    bool moved = false;
    // Other ranks: take in what they finished, hand out the next candidates.
    for (int r = 1; r < world; ++r) {
      Slot& sl = slots[r];
      if (sl.busy && group->check(key("result", r, sl.seq))) {
        const Json res = Json::parse(group->get(key("result", r, sl.seq)));
        const std::string model = group->get(key("model", r, sl.seq));
        group->erase(key("result", r, sl.seq));
        group->erase(key("model", r, sl.seq));
        sl.busy = false;
        ++sl.seq;
        reward(sl.c, res.at("val_top1").get<double>(), res.at("seconds").get<double>(),
               [&] { write_file_atomic(o.output_dir + "/best.onnx", model); });
        moved = true;
      }
      if (!sl.busy && rewarded + static_cast<int64_t>(in_flight.size()) < o.steps) {
        Graph unused;
        sl.c = draw(&unused);
        sl.busy = true;
        group->set(key("task", r, sl.seq), Json{{"tokens", sl.c.tokens}}.dump());
        moved = true;
      }
    }
    // This rank's own candidate.
    if (rewarded + static_cast<int64_t>(in_flight.size()) < o.steps) {
      const auto t0 = std::chrono::steady_clock::now();
      Graph g;
      NasCandidate c = draw(&g);
      train(g, train_part, topts);
      const double val = evaluate(g, val_part, eo).top1;
      reward(c, val, seconds_since(t0), [&] { onnx_save(g, o.output_dir + "/best.onnx"); });
      moved = true;
    }
    if (!moved) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (std::chrono::steady_clock::now() - last_check > std::chrono::seconds(2)) {
        group->check_peers("nas (waiting for the other ranks' candidates)");
        last_check = std::chrono::steady_clock::now();
      }
    }
  }
  if (group) {
    for (int r = 1; r < world; ++r) group->set(key("task", r, slots[r].seq), "{\"stop\":true}");
    group->barrier("the end of the search");
  }
  progress.finish("best " + tokens_to_string(ctl->best_tokens()));
  result.candidates = cands;
  result.best_tokens = ctl->best_tokens();
  result.best_reward = ctl->best_reward();
  for (const auto& c : cands) (c.rejected ? result.rejected : result.rewarded) += 1;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace slim
