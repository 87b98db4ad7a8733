// The simulated-annealing controller (PaddleSlim's SAController rule, REFERENCE.md "NAS"),
// checked against the formula with rewards whose decisions are known.
#include "slim/nas/controller.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "test_util.h"

namespace slim {
namespace {

const Tokens kRange = {7, 5, 8, 6, 2, 5, 8, 6, 2};
const Tokens kInit = {4, 4, 5, 1, 0, 4, 4, 2, 0};

/// A reward with structure (not monotone in one token) so that searches wander.
double toy_reward(const Tokens& t) {
  double r = 0;
  for (size_t i = 0; i < t.size(); ++i) r += std::sin(1.3 * static_cast<double>(t[i] * (i + 1)));
  return r / static_cast<double>(t.size());
}

std::vector<SaRecord> run(SaController& c, int steps) {
  for (int i = 0; i < steps; ++i) {
    Tokens t = c.next();
    c.update(t, toy_reward(t));
  }
  return c.history();
}

TEST(SaController, EvaluatesTheInitialTokensFirstThenMutatesOnePositionInRange) {
  SaController c(kRange, kInit, SaOptions{});
  EXPECT_EQ(c.next(), kInit);
  c.update(kInit, 0.5);
  std::set<Tokens> seen = {kInit};
  // Fewer steps than one base's neighbours (40): the search cannot run out of candidates.
  for (int i = 0; i < 35; ++i) {
    Tokens base = c.base_tokens();
    Tokens t = c.next();
    ASSERT_EQ(t.size(), kRange.size());
    int changed = 0;
    for (size_t k = 0; k < t.size(); ++k) {
      ASSERT_GE(t[k], 0);
      ASSERT_LT(t[k], kRange[k]);
      changed += t[k] != base[k];
    }
    EXPECT_EQ(changed, 1) << tokens_to_string(t) << " from " << tokens_to_string(base);
    EXPECT_TRUE(seen.insert(t).second) << "evaluated twice: " << tokens_to_string(t);
    c.update(t, toy_reward(t));
  }
}

TEST(SaController, AcceptanceAndTemperatureFollowTheFormula) {
  SaOptions o;
  o.init_temperature = 1.0;
  o.reduce_rate = 0.85;
  o.seed = 3;
  SaController c(kRange, kInit, o);
  SaRecord first = c.update(c.next(), 0.40);
  EXPECT_TRUE(first.accepted);
  EXPECT_DOUBLE_EQ(first.temperature, 1.0);
  // Better is always accepted; equal is accepted (exp(0) = 1 >= U).
  Tokens t = c.next();
  SaRecord better = c.update(t, 0.45);
  EXPECT_TRUE(better.accepted);
  EXPECT_DOUBLE_EQ(better.temperature, 0.85);
  EXPECT_EQ(c.base_tokens(), t);
  t = c.next();
  EXPECT_TRUE(c.update(t, 0.45).accepted);
  EXPECT_EQ(c.base_tokens(), t);
  EXPECT_NEAR(c.temperature(), std::pow(0.85, 3), 1e-15);
  // Worse: accepted with probability exp(delta / T). Over many controllers with the same state
  // but different seeds, the share accepted matches it.
  for (double delta : {-0.05, -0.2, -1.0}) {
    int accepted = 0;
    const int n = 4000;
    for (int s = 0; s < n; ++s) {
      SaOptions os = o;
      os.seed = 1000 + s;
      SaController d(kRange, kInit, os);
      d.update(d.next(), 0.5);  // T for the next update: 0.85
      accepted += d.update(d.next(), 0.5 + delta).accepted;
    }
    const double p = std::exp(delta / 0.85);
    const double sd = std::sqrt(p * (1 - p) / n);
    EXPECT_NEAR(static_cast<double>(accepted) / n, p, 4 * sd + 1e-9) << "delta " << delta;
  }
  // Rejected: the base stays; the best is kept apart from the base.
  SaOptions cold = o;
  cold.init_temperature = 1e-6;
  SaController e(kRange, kInit, cold);
  e.update(e.next(), 0.9);
  Tokens worse = e.next();
  EXPECT_FALSE(e.update(worse, 0.1).accepted);
  EXPECT_EQ(e.base_tokens(), kInit);
  EXPECT_EQ(e.best_tokens(), kInit);
  EXPECT_DOUBLE_EQ(e.best_reward(), 0.9);
}

TEST(SaController, WorkersCoolFasterAndNeverShareACandidate) {
  SaOptions o;
  o.workers = 3;
  SaController c(kRange, kInit, o);
  // Three workers ask before anyone reports: three different vectors, the initial one first.
  Tokens a = c.next(), b = c.next(), d = c.next();
  EXPECT_EQ(a, kInit);
  EXPECT_NE(b, a);
  EXPECT_NE(d, b);
  EXPECT_NE(d, a);
  c.update(b, 0.2);
  c.update(a, 0.3);
  EXPECT_NEAR(c.temperature(), std::pow(0.85, 3 * 2), 1e-15);
  EXPECT_THROW(c.update(a, 0.3), Error);  // rewarded already
  EXPECT_THROW(c.update(Tokens(kRange.size(), 0), 0.3), Error);  // never handed out
}

TEST(SaController, SameSeedSameSearchAndAResumedControllerContinuesIdentically) {
  SaOptions o;
  o.seed = 11;
  SaController a(kRange, kInit, o), b(kRange, kInit, o);
  auto ha = run(a, 60), hb = run(b, 60);
  ASSERT_EQ(ha.size(), hb.size());
  for (size_t i = 0; i < ha.size(); ++i) EXPECT_EQ(ha[i].tokens, hb[i].tokens) << i;
  // Another seed searches elsewhere.
  SaOptions o2 = o;
  o2.seed = 12;
  SaController other(kRange, kInit, o2);
  auto ho = run(other, 60);
  int same = 0;
  for (size_t i = 0; i < ha.size(); ++i) same += ha[i].tokens == ho[i].tokens;
  EXPECT_LT(same, 10);

  // Stop after 25 steps (one candidate pending, as when a kill lands mid-training), serialise,
  // restore, continue: the same 60 steps as the uninterrupted run.
  SaController c(kRange, kInit, o);
  run(c, 25);
  Tokens in_flight = c.next();
  const std::string saved = c.to_json().dump();
  SaController d = SaController::from_json(nlohmann::json::parse(saved), "test");
  ASSERT_EQ(d.pending(), std::vector<Tokens>{in_flight});
  d.update(in_flight, toy_reward(in_flight));
  run(d, 60 - 26);
  ASSERT_EQ(d.history().size(), ha.size());
  for (size_t i = 0; i < ha.size(); ++i) {
    EXPECT_EQ(d.history()[i].tokens, ha[i].tokens) << i;
    EXPECT_EQ(d.history()[i].accepted, ha[i].accepted) << i;
  }
  EXPECT_EQ(d.best_tokens(), a.best_tokens());
}

TEST(SaController, DiscardedCandidatesAreNeverHandedOutAgain) {
  SaController c({2, 2}, {0, 0}, SaOptions{});
  Tokens init = c.next();
  c.discard(init);  // e.g. over a FLOPs limit
  EXPECT_FALSE(c.has_reward());
  std::set<Tokens> got;
  for (int i = 0; i < 3; ++i) {
    Tokens t = c.next();
    EXPECT_NE(t, init);
    got.insert(t);
    c.update(t, 0.1 * i);
  }
  EXPECT_EQ(got.size(), 3u);
  // All four vectors of the space are used: the next draw says so.
  std::string err = test::error_of([&] { c.next(); });
  EXPECT_NE(err.find("search exhausted"), std::string::npos) << err;
}

TEST(SaController, BeforeAnyRewardTheBaseCanWalkToADiscardedVector) {
  SaController c(kRange, kInit, SaOptions{});
  c.discard(c.next());      // the initial tokens break a limit
  Tokens nearer = c.next();  // so does this one, by less
  c.discard(nearer);
  c.move_base(nearer);
  EXPECT_EQ(c.base_tokens(), nearer);
  for (int i = 0; i < 10; ++i) {
    Tokens t = c.next();
    int changed = 0;
    for (size_t k = 0; k < t.size(); ++k) changed += t[k] != nearer[k];
    EXPECT_EQ(changed, 1) << tokens_to_string(t);
    c.discard(t);
  }
  Tokens t = c.next();
  c.update(t, 0.3);
  EXPECT_THROW(c.move_base(nearer), Error);  // rewards lead from now on
  EXPECT_THROW(SaController(kRange, kInit, SaOptions{}).move_base(nearer), Error);  // unseen
}

TEST(SaController, WhenEveryNeighbourWasSearchedTwoPositionsChange) {
  SaOptions cold;
  cold.init_temperature = 1e-9;  // worse rewards are never accepted: the base stays put
  SaController c({2, 2, 2}, {0, 0, 0}, cold);
  c.update(c.next(), 1.0);
  for (int i = 0; i < 3; ++i) c.update(c.next(), 0.0);  // the three one-position neighbours
  EXPECT_EQ(c.base_tokens(), (Tokens{0, 0, 0}));
  // PaddleSlim would stop here; two positions change instead.
  for (int i = 0; i < 3; ++i) {
    Tokens t = c.next();
    EXPECT_EQ(std::count(t.begin(), t.end(), 1), 2) << tokens_to_string(t);
    c.update(t, 0.0);
  }
  EXPECT_NE(test::error_of([&] { c.next(); }).find("one or two tokens away"), std::string::npos);
}

TEST(SaController, BadInputIsAClearError) {
  EXPECT_NE(test::error_of([] { SaController({3, 3}, {0, 3}, SaOptions{}); })
                .find("initial tokens: token 1 is 3, outside [0, 3)"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { SaController({3, 3}, {0}, SaOptions{}); })
                .find("initial tokens has 1 tokens, the space 2"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { tokens_parse("4,x,5"); }).find("'x' is not an integer"),
            std::string::npos);
  EXPECT_EQ(tokens_parse("[4, 4,5 ]"), (Tokens{4, 4, 5}));
  nlohmann::json j = SaController({3, 3}, {0, 0}, SaOptions{}).to_json();
  j.erase("rng_state");
  EXPECT_NE(test::error_of([&] { SaController::from_json(j, "ck.json"); }).find("ck.json"),
            std::string::npos);
}

}  // namespace
}  // namespace slim
