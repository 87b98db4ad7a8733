// `slim nas`: a short search on Fashion-MNIST under limits (no trained candidate breaks one), the
// run directory's files, a kill -9 mid-search that resumes into the uninterrupted run's exact
// sequence, `nas export`, and bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "slim/analysis/flops.h"
#include "slim/analysis/model_stats.h"
#include "slim/exec/executor.h"
#include "slim/nas/latency_table.h"
#include "slim/nas/search_space.h"
#include "slim/onnx/onnx_io.h"
#include "test_util.h"

namespace slim {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// The initial MobileNetV2 tokens at 1x28x28 have 5,597,552 FLOPs; a limit a little above them
// rejects a share of the neighbours.
constexpr int64_t kMaxFlops = 6000000;

std::string search_args(const std::string& out, int steps) {
  return "nas --space mobilenet_v2 --input 1,28,28 --data fashion:" + test::data_dir("fashion") +
         " --steps " + std::to_string(steps) + " --max-samples 256 --val-samples 256 --batch 64" +
         " --lr 0.05 --max-flops " + std::to_string(kMaxFlops) + " --max-latency-ms 50" +
         " --latency-runs 5 --threads 2 -o " + out;
}

Json read_json(const std::string& path) {
  std::ifstream in(path);
  return Json::parse(in);
}

/// Everything but the wall time of each candidate.
Json without_times(Json candidates) {
  for (auto& c : candidates) {
    c.erase("seconds");
    c.erase("latency_ms");  // measured: noise
  }
  return candidates;
}

class NasCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = new std::string(test::temp_dir("nas_cli")); }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string path(const std::string& f) { return *dir_ + "/" + f; }
  static test::CmdResult slim(const std::string& args) {
    return test::run_cmd(test::slim_bin() + " " + args);
  }
  static std::string* dir_;
};
std::string* NasCli::dir_ = nullptr;

TEST_F(NasCli, SearchesUnderLimitsAndResumesAfterAKillExactlyAsIfNeverStopped) {
  const int steps = 6;
  auto r = slim(search_args(path("whole"), steps) + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  Json j = Json::parse(r.out);
  EXPECT_EQ(j["rewarded"], steps);
  Json ck = read_json(path("whole/checkpoint.json"));
  const Json& cands = ck["candidates"];
  auto space = search_space_make("mobilenet_v2");
  // The initial tokens first; no trained candidate breaks a limit; every rejection says which
  // and was never trained; no vector twice.
  EXPECT_EQ(cands[0]["tokens"].get<Tokens>(), space->init_tokens());
  std::set<Tokens> seen;
  int rewarded = 0, rejected = 0;
  for (const auto& c : cands) {
    EXPECT_TRUE(seen.insert(c["tokens"].get<Tokens>()).second) << c.dump();
    if (c["rejected"].get<bool>()) {
      ++rejected;
      EXPECT_GT(c["flops"].get<int64_t>(), kMaxFlops) << c.dump();
      EXPECT_EQ(c["reason"].get<std::string>().rfind("flops ", 0), 0u) << c.dump();
      continue;
    }
    ++rewarded;
    EXPECT_LE(c["flops"].get<int64_t>(), kMaxFlops) << c.dump();
    EXPECT_LE(c["latency_ms"].get<double>(), 50.0) << c.dump();
    EXPECT_GT(c["latency_ms"].get<double>(), 0.0) << c.dump();
    // The logged FLOPs are the candidate's.
    ZooOptions zo;
    zo.input = {1, 28, 28};
    zo.draw_weights = false;
    EXPECT_EQ(count_flops(space->build(c["tokens"].get<Tokens>(), zo)).total,
              c["flops"].get<int64_t>());
  }
  EXPECT_EQ(rewarded, steps);
  EXPECT_EQ(j["rejected"], rejected);
  EXPECT_GT(rejected, 0) << "the limit should reject some neighbours of the initial tokens";
  // The best candidate: its tokens, its trained model (which runs in ONNX Runtime).
  Json best = read_json(path("whole/best.json"));
  EXPECT_EQ(best["tokens"], j["best_tokens"]);
  EXPECT_EQ(best["reward"].get<double>(), j["best_reward"].get<double>());
  Graph g = onnx_load(path("whole/best.onnx"));
  EXPECT_EQ(count_flops(g).total, best["flops"].get<int64_t>());
  at::Tensor x = at::randn({3, 1, 28, 28}, at::detail::createCPUGenerator(1));
  Executor ex(g);
  at::Tensor ours = ex.run({x})[0];
  at::Tensor ort = test::ort_run(path("whole/best.onnx"), x, *dir_);
  ASSERT_TRUE(ort.defined());
  EXPECT_LT(test::rel_error(ours, ort), 1e-4);
  std::ifstream log(path("whole/search.log"));
  std::string text((std::istreambuf_iterator<char>(log)), {});
  EXPECT_NE(text.find("rejected: flops"), std::string::npos) << text;

  // The same search killed (SIGKILL) once three candidates are in its checkpoint, then run
  // again: the same candidates, rewards and decisions as the uninterrupted run.
  int done = 0;
  const bool killed = test::run_and_kill(
      test::slim_bin() + " " + search_args(path("killed"), steps), path("killed.log"), [&] {
        try {
          const Json now = read_json(path("killed/checkpoint.json"));
          done = 0;
          for (const auto& c : now.at("candidates")) done += !c.at("rejected").get<bool>();
        } catch (...) {
          // not written yet
        }
        return done >= 3;
      });
  std::ifstream klog(path("killed.log"));
  ASSERT_TRUE(killed) << "the search ended before it was killed: "
                      << std::string((std::istreambuf_iterator<char>(klog)), {});
  ASSERT_GE(done, 3);
  const int before = done;
  auto resumed = slim(search_args(path("killed"), steps) + " --json");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  Json rk = read_json(path("killed/checkpoint.json"));
  EXPECT_LT(before, steps);
  EXPECT_EQ(without_times(rk["candidates"]), without_times(cands));
  EXPECT_EQ(rk["controller"]["rng_state"], ck["controller"]["rng_state"]);
  EXPECT_EQ(Json::parse(resumed.out)["best_tokens"], j["best_tokens"]);

  // More steps continue the search; other options are refused, naming the option.
  std::string changed = search_args(path("killed"), steps);
  changed.replace(changed.find("--lr 0.05"), 9, "--lr 0.1");
  auto other = slim(changed);
  EXPECT_NE(other.code, 0);
  EXPECT_NE(other.err.find("checkpoint.json was written by a search with lr = 0.05, this one has "
                           "0.1"),
            std::string::npos)
      << other.err;
}

TEST_F(NasCli, ExportBuildsAnyCandidateAndSpacesAreListed) {
  auto space = search_space_make("resnet");
  auto r = slim(
      "nas export --space resnet --tokens 0,0,0,0,0,0,0,0 --input 3,32,32 --classes 5 "
      "-o " +
      path("r.onnx"));
  ASSERT_EQ(r.code, 0) << r.err;
  Graph g = onnx_load(path("r.onnx"));
  EXPECT_EQ(g.outputs.at(0).shape, (std::vector<int64_t>{kDynamicDim, 5}));
  ZooOptions zo;
  zo.input = {3, 32, 32};
  zo.classes = 5;
  EXPECT_EQ(count_flops(g).total, count_flops(space->build(Tokens(8, 0), zo)).total);
  auto list = slim("nas spaces");
  ASSERT_EQ(list.code, 0) << list.err;
  for (const char* n : {"mobilenet_v2", "mobilenet_v1", "resnet"})
    EXPECT_NE(list.out.find(n), std::string::npos) << list.out;
  EXPECT_NE(list.out.find(tokens_to_string(space->init_tokens())), std::string::npos);
}

TEST_F(NasCli, LatencyTableOfModelsIsExtendedAndPredicts) {
  const std::string a = path("lt_a.onnx"), b = path("lt_b.onnx"), t = path("lt.json");
  ASSERT_EQ(slim("nas export --space resnet --tokens 1,1,2,2,3,4,3,1 --input 1,16,16 -o " + a).code,
            0);
  ASSERT_EQ(slim("nas export --space resnet --tokens 2,1,2,2,3,4,3,1 --input 1,16,16 -o " + b).code,
            0);
  const std::string flags = " --runs 3 --warmup 0 --threads 1 -o " + t;
  auto r = slim("latency-table " + a + flags);
  ASSERT_EQ(r.code, 0) << r.err;
  const Json first = read_json(t);
  EXPECT_EQ(first["batch"], 1);
  EXPECT_EQ(first["threads"], 1);
  ASSERT_TRUE(first.contains("fixed_ms"));
  auto p = slim("latency-table predict " + t + " " + a);
  ASSERT_EQ(p.code, 0) << p.err;
  Graph g = onnx_load(a);
  const auto sigs = latency_signatures(g, 1);
  double sum = first["fixed_ms"].get<double>() +
               first["step_ms"].get<double>() * static_cast<double>(sigs.size());
  for (const auto& s : sigs) sum += first["entries"].at(s).get<double>();
  EXPECT_NEAR(Json::parse(p.out)[a].get<double>(), sum, 1e-9);
  // b has a wider stem and first stage: missing from the table until added.
  auto missing = slim("latency-table predict " + t + " " + b);
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.err.find("latency table has no entry for the step"), std::string::npos)
      << missing.err;
  ASSERT_EQ(slim("latency-table " + b + flags).code, 0);
  const Json second = read_json(t);
  EXPECT_GT(second["entries"].size(), first["entries"].size());
  EXPECT_EQ(second["fixed_ms"], first["fixed_ms"]);  // from the first network
  for (const auto& [sig, ms] : first["entries"].items()) EXPECT_EQ(second["entries"][sig], ms);
  EXPECT_EQ(slim("latency-table predict " + t + " " + b).code, 0);
  auto other = slim("latency-table " + b + " --batch 2 --runs 3 --threads 1 -o " + t);
  EXPECT_NE(other.code, 0);
  EXPECT_NE(other.err.find("measured at batch 1"), std::string::npos) << other.err;
}

TEST_F(NasCli, BadInputIsAClearErrorAndOverwritesNothing) {
  auto check = [](const std::string& args, const std::string& want) {
    auto r = slim(args);
    EXPECT_NE(r.code, 0) << args;
    EXPECT_NE(r.err.find(want), std::string::npos) << args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  };
  const std::string keep = path("keep.onnx");
  { std::ofstream(keep) << "precious"; }
  check("nas export --space darts --tokens 1 -o " + keep, "unknown search space 'darts'");
  check("nas export --space resnet --tokens 1,1,2 -o " + keep, "resnet takes 8 tokens, got 3");
  check("nas export --space resnet --tokens 1,1,2,2,3,4,3,9 -o " + keep,
        "resnet: token 7 is 9, outside [0, 6)");
  check("nas export --space resnet --tokens 1,x -o " + keep, "'x' is not an integer");
  std::ifstream in(keep);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(in)), {}), "precious");

  // Limits nothing meets: stops after --max-draws draws in a row, saying what broke them.
  {
    // (Flops are checked before params: some draws break both, and are counted as flops.)
    auto r = slim(search_args(path("tight"), 3) + " --max-params 1000 --max-draws 20");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("nas: 20 candidates in a row broke a limit ("), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("params over its limit"), std::string::npos) << r.err;
    // Resumed, it stops again at once and counts the same way.
    auto again = slim(search_args(path("tight"), 3) + " --max-params 1000 --max-draws 20");
    EXPECT_NE(again.code, 0);
    EXPECT_NE(again.err.find("nas: 21 candidates in a row broke a limit ("), std::string::npos)
        << again.err;
    EXPECT_NE(again.err.find("params over its limit"), std::string::npos) << again.err;
  }
  // A corrupt checkpoint is named and left alone.
  fs::create_directories(path("corrupt"));
  { std::ofstream(path("corrupt/checkpoint.json")) << "{\"version\": 1, \"options\": "; }
  check(search_args(path("corrupt"), 3), "corrupt/checkpoint.json: not a NAS checkpoint");
  std::ifstream ck(path("corrupt/checkpoint.json"));
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(ck)), {}),
            "{\"version\": 1, \"options\": ");
  check("nas --space mobilenet_v2 --input 1,28 --data fashion:" + test::data_dir("fashion") +
            " -o " + path("x"),
        "--input '1,28': expected C,H,W");
  check("nas --space mobilenet_v2 --input 3,28,28 --data fashion:" + test::data_dir("fashion") +
            " -o " + path("x"),
        "has images of 1x28x28, the search's input is 3x28x28");
  // A latency table measured at batch 1 with another --latency-batch (it was silently replaced).
  const std::string net = path("lt_net.onnx"), table = path("lt_batch1.json");
  ASSERT_EQ(
      slim("nas export --space resnet --tokens 1,1,2,2,3,4,3,1 --input 1,16,16 -o " + net).code, 0);
  ASSERT_EQ(slim("latency-table " + net + " --runs 1 --warmup 0 --threads 1 -o " + table).code, 0);
  check("nas --space resnet --input 1,16,16 --data fashion:" + test::data_dir("fashion") +
            " --latency-table " + table + " --latency-batch 4 -o " + path("x"),
        "nas: --latency-batch 4 is not the batch the latency table '" + table +
            "' was measured at (1); leave it out to use the table's");
}

}  // namespace
}  // namespace slim
