#include "slim/nas/controller.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>

#include "slim/ir/error.h"

namespace slim {

namespace {

void check_in_range(const Tokens& range, const Tokens& t, const char* what) {
  SLIM_CHECK(t.size() == range.size(), what, " has ", t.size(), " tokens, the space ",
             range.size());
  for (size_t i = 0; i < t.size(); ++i)
    SLIM_CHECK(t[i] >= 0 && t[i] < range[i], what, ": token ", i, " is ", t[i], ", outside [0, ",
               range[i], ")");
}

}  // namespace

Tokens tokens_random(const Tokens& range, std::mt19937_64& rng) {
  Tokens t(range.size());
  for (size_t k = 0; k < t.size(); ++k) t[k] = static_cast<int64_t>(rng() % range[k]);
  return t;
}

std::string tokens_to_string(const Tokens& t) {
  std::string s = "[";
  for (size_t i = 0; i < t.size(); ++i) s += (i ? ", " : "") + std::to_string(t[i]);
  return s + "]";
}

Tokens tokens_parse(const std::string& text) {
  Tokens out;
  std::string cur;
  auto flush = [&] {
    if (cur.empty()) return;
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(cur, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    SLIM_CHECK(used == cur.size(), "tokens '", text, "': '", cur, "' is not an integer");
    out.push_back(v);
    cur.clear();
  };
  for (char c : text) {
    if (c == ',' || c == '[' || c == ']' || std::isspace(static_cast<unsigned char>(c)))
      flush();
    else
      cur += c;
  }
  flush();
  SLIM_CHECK(!out.empty(), "tokens '", text, "': no integers (expected e.g. 4,4,5,1)");
  return out;
}

SaController::SaController(Tokens range_table, Tokens init, SaOptions options)
    : range_(std::move(range_table)), init_(std::move(init)), opts_(options), rng_(options.seed) {
  SLIM_CHECK(!range_.empty(), "search space has no tokens");
  for (size_t i = 0; i < range_.size(); ++i)
    SLIM_CHECK(range_[i] > 0, "range table: token ", i, " has range ", range_[i]);
  check_in_range(range_, init_, "initial tokens");
  SLIM_CHECK(std::isfinite(opts_.init_temperature) && opts_.init_temperature > 0,
             "initial temperature must be positive, got ", opts_.init_temperature);
  SLIM_CHECK(opts_.reduce_rate > 0 && opts_.reduce_rate <= 1, "reduce rate must be in (0, 1], got ",
             opts_.reduce_rate);
  SLIM_CHECK(opts_.max_tries > 0, "max tries must be positive, got ", opts_.max_tries);
  set_workers(opts_.workers);
  base_ = best_ = init_;
}

void SaController::set_workers(int64_t workers) {
  SLIM_CHECK(workers >= 1, "workers must be at least 1, got ", workers);
  opts_.workers = workers;
}

// Portable draws: std::mt19937_64's output sequence is fixed by the standard, the distributions
// of <random> are not (libstdc++ and libc++ differ). Modulo bias for ranges of a few dozen is
// below 1e-17.
uint64_t SaController::draw_below(uint64_t n) { return rng_() % n; }
double SaController::draw_unit() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

Tokens SaController::next() {
  Tokens t;
  if (!has_reward() && !seen(init_)) {
    t = init_;
  } else {
    bool found = false;
    for (int positions = 1; positions <= 2 && !found; ++positions) {
      for (int64_t i = 0; i < opts_.max_tries && !found; ++i) {
        t = base_;
        for (int k = 0; k < positions; ++k) {
          const size_t pos = draw_below(t.size());
          t[pos] = static_cast<int64_t>(draw_below(static_cast<uint64_t>(range_[pos])));
        }
        found = !seen(t);
      }
    }
    SLIM_CHECK(found, "search exhausted: ", 2 * opts_.max_tries, " draws around the base ",
               tokens_to_string(base_), " found no vector one or two tokens away that was not ",
               "searched already");
  }
  pending_.push_back(t);
  seen_.insert(t);
  return t;
}

double SaController::temperature() const {
  return opts_.init_temperature *
         std::pow(opts_.reduce_rate, static_cast<double>(opts_.workers * iteration_));
}

SaRecord SaController::update(const Tokens& tokens, double reward) {
  auto it = std::find(pending_.begin(), pending_.end(), tokens);
  SLIM_CHECK(it != pending_.end(), "reward for ", tokens_to_string(tokens),
             ", which the controller did not hand out (or was rewarded already)");
  SLIM_CHECK(std::isfinite(reward), "reward for ", tokens_to_string(tokens), " is ", reward);
  pending_.erase(it);
  SaRecord r;
  r.tokens = tokens;
  r.reward = reward;
  r.temperature = temperature();
  r.iteration = iteration_;
  if (!has_reward()) {
    r.accepted = true;
  } else if (reward > base_reward_) {
    r.accepted = true;
  } else {
    // The draw is made only here, as in PaddleSlim, so the random sequence depends on the
    // rewards only through this branch.
    r.accepted = draw_unit() <= std::exp((reward - base_reward_) / r.temperature);
  }
  if (r.accepted) {
    base_ = tokens;
    base_reward_ = reward;
  }
  if (!has_reward() || reward > best_reward_) {
    best_ = tokens;
    best_reward_ = reward;
  }
  ++iteration_;
  history_.push_back(r);
  return r;
}

void SaController::discard(const Tokens& tokens) {
  auto it = std::find(pending_.begin(), pending_.end(), tokens);
  SLIM_CHECK(it != pending_.end(), "discarding ", tokens_to_string(tokens),
             ", which is not pending");
  pending_.erase(it);
  discarded_.insert(tokens);
}

void SaController::move_base(const Tokens& tokens) {
  SLIM_CHECK(!has_reward(), "move_base after a reward: the base follows the rewards now");
  SLIM_CHECK(seen(tokens), "move_base to ", tokens_to_string(tokens), ", never handed out");
  base_ = tokens;
}

nlohmann::json SaController::to_json() const {
  nlohmann::json j;
  j["range_table"] = range_;
  j["init_tokens"] = init_;
  j["init_temperature"] = opts_.init_temperature;
  j["reduce_rate"] = opts_.reduce_rate;
  j["max_tries"] = opts_.max_tries;
  j["workers"] = opts_.workers;
  j["seed"] = opts_.seed;
  std::ostringstream rng;
  rng << rng_;
  j["rng_state"] = rng.str();
  j["iteration"] = iteration_;
  j["base_tokens"] = base_;
  j["base_reward"] = base_reward_;
  j["best_tokens"] = best_;
  j["best_reward"] = best_reward_;
  j["history"] = nlohmann::json::array();
  for (const auto& r : history_)
    j["history"].push_back({{"tokens", r.tokens},
                            {"reward", r.reward},
                            {"accepted", r.accepted},
                            {"temperature", r.temperature},
                            {"iteration", r.iteration}});
  j["pending"] = pending_;
  j["discarded"] = discarded_;
  return j;
}

SaController SaController::from_json(const nlohmann::json& j, const std::string& what) {
  try {
    SaOptions o;
    o.init_temperature = j.at("init_temperature").get<double>();
    o.reduce_rate = j.at("reduce_rate").get<double>();
    o.max_tries = j.at("max_tries").get<int64_t>();
    o.workers = j.at("workers").get<int64_t>();
    o.seed = j.at("seed").get<uint64_t>();
    SaController c(j.at("range_table").get<Tokens>(), j.at("init_tokens").get<Tokens>(), o);
    std::istringstream rng(j.at("rng_state").get<std::string>());
    rng >> c.rng_;
    SLIM_CHECK(!rng.fail(), what, ": controller rng_state is not a generator state");
    c.iteration_ = j.at("iteration").get<int64_t>();
    c.base_ = j.at("base_tokens").get<Tokens>();
    c.base_reward_ = j.at("base_reward").get<double>();
    c.best_ = j.at("best_tokens").get<Tokens>();
    c.best_reward_ = j.at("best_reward").get<double>();
    check_in_range(c.range_, c.base_, "checkpoint base tokens");
    check_in_range(c.range_, c.best_, "checkpoint best tokens");
    for (const auto& h : j.at("history")) {
      SaRecord r;
      r.tokens = h.at("tokens").get<Tokens>();
      check_in_range(c.range_, r.tokens, "checkpoint history tokens");
      r.reward = h.at("reward").get<double>();
      r.accepted = h.at("accepted").get<bool>();
      r.temperature = h.at("temperature").get<double>();
      r.iteration = h.at("iteration").get<int64_t>();
      c.seen_.insert(r.tokens);
      c.history_.push_back(r);
    }
    SLIM_CHECK(static_cast<int64_t>(c.history_.size()) == c.iteration_, what,
               ": controller iteration ", c.iteration_, " but ", c.history_.size(),
               " rewarded vectors");
    for (const auto& p : j.at("pending")) {
      c.pending_.push_back(p.get<Tokens>());
      check_in_range(c.range_, c.pending_.back(), "checkpoint pending tokens");
      c.seen_.insert(c.pending_.back());
    }
    for (const auto& d : j.at("discarded")) {
      c.discarded_.insert(d.get<Tokens>());
      c.seen_.insert(d.get<Tokens>());
    }
    return c;
  } catch (const nlohmann::json::exception& e) {
    SLIM_FAIL(what, ": controller state: ", error_brief(e));
  }
}

}  // namespace slim
