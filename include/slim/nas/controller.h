#pragma once
/// Simulated annealing over token vectors: PaddleSlim's SAController (SANAS), seeded and
/// deterministic on any machine, with Slim's differences: the initial tokens are evaluated first
/// (PaddleSlim never scores them), and candidates handed out but not yet rewarded count as
/// searched, so several workers can ask for candidates at once without duplicates.
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace slim {

using Tokens = std::vector<int64_t>;

struct SaOptions {
  double init_temperature = 1.0;  ///< T0 (PaddleSlim's effective default with init tokens)
  double reduce_rate = 0.85;      ///< T = T0 * reduce_rate^(workers * iteration)
  int64_t max_tries = 50000;      ///< draws of one candidate before the space counts as exhausted
  int64_t workers = 1;            ///< parallel workers: the temperature falls this much faster
  uint64_t seed = 0;              ///< the only source of randomness
};

/// One rewarded candidate.
struct SaRecord {
  Tokens tokens;
  double reward = 0;
  bool accepted = false;     ///< became the new base
  double temperature = 0;    ///< T used to decide
  int64_t iteration = 0;     ///< updates before this one
};

class SaController {
 public:
  /// `range_table[i]` > 0 values token i may take ([0, range)); `init` within it. Errors name
  /// the position and the value.
  SaController(Tokens range_table, Tokens init, SaOptions options);

  /// The next vector to evaluate: the initial tokens first; then the base with one position,
  /// drawn uniformly, set to a uniform value below its range (possibly its old value), drawn
  /// again while the vector was searched or is pending, up to max_tries. When every such
  /// neighbour was searched (PaddleSlim stops there), up to max_tries draws change two
  /// positions; then an error says the neighbourhood is exhausted. The vector is pending until
  /// update() gets its reward.
  Tokens next();

  /// Reports the reward of a vector next() handed out: with T = T0 * reduce_rate^(workers *
  /// iteration), it becomes the base if reward > base reward or U[0,1) <= exp((reward - base) / T)
  /// (equal rewards are accepted; the first reward always is). Errors for a vector that is not
  /// pending.
  SaRecord update(const Tokens& tokens, double reward);

  /// Temperature of the next update.
  double temperature() const;
  int64_t iteration() const { return iteration_; }
  const Tokens& range_table() const { return range_; }
  const Tokens& init_tokens() const { return init_; }
  const Tokens& base_tokens() const { return base_; }
  double base_reward() const { return base_reward_; }
  const Tokens& best_tokens() const { return best_; }
  double best_reward() const { return best_reward_; }
  bool has_reward() const { return iteration_ > 0; }
  /// Every rewarded vector, in update order.
  const std::vector<SaRecord>& history() const { return history_; }
  /// Vectors handed out and not yet rewarded, in the order next() gave them.
  const std::vector<Tokens>& pending() const { return pending_; }
  /// Searched or pending.
  bool seen(const Tokens& t) const { return seen_.count(t) > 0; }
  /// Drops a pending vector without a reward (a candidate that broke a limit): it stays seen,
  /// so it is never handed out again, and the temperature does not move.
  void discard(const Tokens& tokens);
  /// Before the first reward only: makes a searched (e.g. discarded) vector the base, so that
  /// the search can walk toward the limits when the initial tokens and all their neighbours
  /// break them. Errors after a reward or for a vector never handed out.
  void move_base(const Tokens& tokens);

  /// Everything needed to continue exactly where this controller is: options, random state,
  /// base, best, history, pending. `from_json(to_json())` behaves identically from then on.
  nlohmann::json to_json() const;
  /// Errors (naming `what`, e.g. the checkpoint file) on a missing or ill-typed field.
  static SaController from_json(const nlohmann::json& j, const std::string& what);

  const SaOptions& options() const { return opts_; }
  /// Changes the number of workers (a resumed search may run with another count).
  void set_workers(int64_t workers);

 private:
  uint64_t draw_below(uint64_t n);
  double draw_unit();

  Tokens range_, init_;
  SaOptions opts_;
  std::mt19937_64 rng_;
  Tokens base_, best_;
  double base_reward_ = 0, best_reward_ = 0;
  int64_t iteration_ = 0;
  std::vector<SaRecord> history_;
  std::vector<Tokens> pending_;
  std::set<Tokens> seen_;
  std::set<Tokens> discarded_;
};

/// A vector drawn uniformly in `range` (token k: rng() % range[k], in order; the same on any
/// platform).
Tokens tokens_random(const Tokens& range, std::mt19937_64& rng);

/// "[4, 4, 5, 1]".
std::string tokens_to_string(const Tokens& t);
/// Parses "4,4,5,1" (spaces and brackets allowed); errors quote the text.
Tokens tokens_parse(const std::string& text);

}  // namespace slim
