// `slim compress`: a pipeline config gives the same models and numbers as the equivalent CLI
// commands; a second run reuses every stage, a changed stage reruns it and the stages after it;
// kill -9 mid-stage resumes; bad configs are one-line errors naming file:line:column and write
// nothing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "slim/onnx/onnx_io.h"
#include "slim/pipeline/config.h"
#include "test_util.h"
#include "trained_models.h"

namespace slim {
namespace {

using test::write_text;

namespace fs = std::filesystem;
using Json = nlohmann::json;

Json read_json(const std::string& path) { return Json::parse(test::read_file(path)); }

class CompressCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = new std::string(test::temp_dir("compress_cli")); }
  static void TearDownTestSuite() { delete dir_; }
  static std::string path(const std::string& f) { return *dir_ + "/" + f; }
  static test::CmdResult slim(const std::string& args) {
    return test::run_cmd(test::slim_bin() + " " + args);
  }
  /// PaddleSlim's pruning tutorial on a slice of MNIST: train, sensitivity, prune by loss,
  /// fine-tune, int8 PTQ. `finetune_lr` varies the fourth stage.
  static std::string tutorial(const std::string& finetune_lr = "0.05") {
    return "model: {zoo: mobilenet_v1, input: [1, 28, 28], classes: 10, seed: 0}\n"
           "data: mnist:" +
           test::data_dir("mnist") +
           "\n"
           "threads: 2\n"
           "measure: {max-samples: 500, latency-runs: 3, latency-warmup: 1}\n"
           "stages:\n"
           "  - train: {epochs: 1, batch: 64, lr: 0.1, lr-schedule: cosine, max-samples: 1024,\n"
           "            no-shuffle: true, drop-last: true}\n"
           "  - sensitivity:\n"
           "      params: [conv2_1_sep_weights, conv2_2_sep_weights, conv3_1_sep_weights]\n"
           "      ratios: [0.1, 0.2, 0.3]\n"
           "      max-samples: 300\n"
           "  - prune: {loss: 0.05, align: 8}\n"
           "  - train: {name: fine-tune, epochs: 1, batch: 64, lr: " +
           finetune_lr +
           ",\n"
           "            max-samples: 1024, seed: 1}\n"
           "  - quant: {mode: ptq, algo: hist, batches: 4}\n";
  }
  static std::string* dir_;
};
std::string* CompressCli::dir_ = nullptr;

TEST_F(CompressCli, TutorialConfigGivesTheCliCommandsModelsAndReusesFinishedStages) {
  write_text(path("tutorial.yaml"), tutorial());
  const std::string run = path("run");
  auto r = slim("compress " + path("tutorial.yaml") + " -o " + run);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("| fine-tune"), std::string::npos) << r.out;

  // The same work as separate commands.
  const std::string data = " --data mnist:" + test::data_dir("mnist") + " --threads 2";
  const std::string c = path("cli_");
  for (const std::string& cmd :
       {"zoo mobilenet_v1 --input 1,28,28 --classes 10 --seed 0 -o " + c + "0.onnx",
        "train " + c + "0.onnx" + data +
            " --epochs 1 --batch 64 --lr 0.1 --lr-schedule cosine "
            "--max-samples 1024 --no-shuffle --drop-last --no-eval -o " +
            c + "1.onnx",
        "sensitivity " + c + "1.onnx" + data +
            " --params conv2_1_sep_weights,"
            "conv2_2_sep_weights,conv3_1_sep_weights --ratios 0.1,0.2,0.3 --max-samples 300 "
            "-o " +
            c + "sens.json",
        "prune " + c + "1.onnx --sens " + c + "sens.json --loss 0.05 --align 8 -o " + c + "2.onnx",
        "train " + c + "2.onnx" + data +
            " --epochs 1 --batch 64 --lr 0.05 --max-samples 1024 "
            "--seed 1 --no-eval -o " +
            c + "3.onnx",
        "quant ptq " + c + "3.onnx" + data + " --algo hist --batches 4 -o " + c + "4.onnx"}) {
    auto step = slim(cmd);
    ASSERT_EQ(step.code, 0) << cmd << "\n" << step.err;
  }
  const std::vector<std::string> stages{"00-model", "01-train",     "02-sensitivity",
                                        "03-prune", "04-fine-tune", "05-quant"};
  for (int i : {0, 1, 3, 4, 5}) {
    const std::string cli = c + std::to_string(i < 2 ? i : i - 1) + ".onnx";
    EXPECT_EQ(test::read_file(run + "/" + stages[static_cast<size_t>(i)] + "/model.onnx"),
              test::read_file(cli))
        << stages[static_cast<size_t>(i)] << " differs from " << cli;
  }
  EXPECT_EQ(read_json(run + "/02-sensitivity/sens.json"), read_json(c + "sens.json"));
  // The measurements are those of slim eval, info and bench.
  const Json summary = read_json(run + "/summary.json");
  ASSERT_EQ(summary["stages"].size(), 6u);
  const Json& fine = summary["stages"][4]["metrics"]["measure"];
  auto ev = slim("eval " + c + "3.onnx" + data + " --max-samples 500 --json");
  ASSERT_EQ(ev.code, 0) << ev.err;
  EXPECT_EQ(fine["eval"]["top1"], Json::parse(ev.out)["top1"]);
  auto info = slim("info " + c + "3.onnx --json");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_EQ(fine["flops"], Json::parse(info.out)["flops"]);
  EXPECT_EQ(fine["params"], Json::parse(info.out)["params"]);
  EXPECT_EQ(fine["file_bytes"], Json::parse(info.out)["file_bytes"]);
  EXPECT_EQ(summary["stages"][5]["metrics"]["measure"]["precision"], "int8");
  EXPECT_EQ(summary["stages"][3]["metrics"]["measure"]["precision"], "float");
  const Json& prune = summary["stages"][3]["metrics"];
  EXPECT_LT(prune["flops_after"].get<int64_t>(), prune["flops_before"].get<int64_t>());
  for (const auto& p : prune["pruned"]) EXPECT_EQ(p["kept"].get<int64_t>() % 8, 0) << p;
  EXPECT_EQ(summary["final_model"], run + "/05-quant/model.onnx");

  // A second run reuses every stage and rewrites no model.
  const auto stamp = fs::last_write_time(run + "/01-train/model.onnx");
  r = slim("compress " + path("tutorial.yaml") + " -o " + run + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const auto& s : Json::parse(r.out)["stages"]) EXPECT_TRUE(s["reused"].get<bool>()) << s;
  EXPECT_EQ(fs::last_write_time(run + "/01-train/model.onnx"), stamp);
  // The dry run says what a changed fourth stage would do: keep three, rerun the rest.
  write_text(path("changed.yaml"), tutorial("0.02"));
  r = slim("compress " + path("changed.yaml") + " -o " + run + " --dry-run");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* line : {"[0/5] model", "[1/5] train", "[2/5] sensitivity", "[3/5] prune"})
    EXPECT_NE(r.out.find(std::string(line) + std::string(28 - std::strlen(line), ' ') + " done"),
              std::string::npos)
        << line << "\n"
        << r.out;
  for (const char* line : {"[4/5] fine-tune", "[5/5] quant"})
    EXPECT_NE(r.out.find(std::string(line) + std::string(28 - std::strlen(line), ' ') + " run"),
              std::string::npos)
        << line << "\n"
        << r.out;
  EXPECT_EQ(fs::last_write_time(run + "/01-train/model.onnx"), stamp);
  r = slim("compress " + path("changed.yaml") + " -o " + run + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const Json changed = Json::parse(r.out);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(changed["stages"][i]["reused"].get<bool>(), i < 4) << i;
  EXPECT_NE(test::read_file(run + "/04-fine-tune/model.onnx"), test::read_file(c + "3.onnx"));
}

TEST_F(CompressCli, KilledMidStageResumesAtThatStage) {
  // The sensitivity stage killed (SIGKILL) once its table has entries, then run again: it
  // resumes the table, and the run ends as an uninterrupted one.
  const std::string config =
      "model: {zoo: mobilenet_v1, input: [1, 28, 28], classes: 10, seed: 0}\n"
      "data: mnist:" +
      test::data_dir("mnist") +
      "\n"
      "threads: 2\n"
      "measure: {eval: false, latency-runs: 0}\n"
      "stages:\n"
      "  - train: {epochs: 1, batch: 64, max-samples: 512}\n"
      "  - sensitivity: {params-regex: 'conv[2-5]_._sep_weights', ratios: [0.2, 0.4],"
      " max-samples: 1000}\n"
      "  - prune: {flops-target: 0.3}\n";
  write_text(path("kill.yaml"), config);
  auto whole = slim("compress " + path("kill.yaml") + " -o " + path("whole"));
  ASSERT_EQ(whole.code, 0) << whole.err;

  const std::string sens = path("killed/02-sensitivity/sens.json");
  size_t entries = 0;
  const bool killed = test::run_and_kill(
      test::slim_bin() + " compress " + path("kill.yaml") + " -o " + path("killed"),
      path("killed.log"), [&] {
        try {
          const Json table = read_json(sens);
          entries = 0;
          for (const auto& [param, points] : table.items()) entries += points.size();
        } catch (...) {
          // not written yet
        }
        return entries >= 2;
      });
  ASSERT_TRUE(killed) << "the run ended before it was killed: "
                      << test::read_file(path("killed.log"));
  ASSERT_GE(entries, 2u);
  EXPECT_FALSE(fs::exists(path("killed/02-sensitivity/metrics.json")));
  EXPECT_FALSE(fs::exists(path("killed/summary.json")));
  auto resumed = slim("compress " + path("kill.yaml") + " -o " + path("killed") + " --json");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  const Json j = Json::parse(resumed.out);
  EXPECT_TRUE(j["stages"][1]["reused"].get<bool>());   // train finished before the kill
  EXPECT_FALSE(j["stages"][2]["reused"].get<bool>());  // sensitivity resumed
  // The resumed table skipped what was measured.
  EXPECT_NE(resumed.err.find("of this run's entries already in"), std::string::npos) << resumed.err;
  EXPECT_EQ(read_json(sens), read_json(path("whole/02-sensitivity/sens.json")));
  EXPECT_EQ(test::read_file(path("killed/03-prune/model.onnx")),
            test::read_file(path("whole/03-prune/model.onnx")));
}

TEST_F(CompressCli, BadConfigsAreOneLineErrorsAndWriteNothing) {
  const std::string head =
      "model: {zoo: mobilenet_v1}\ndata: mnist:" + test::data_dir("mnist") + "\nstages:\n";
  struct Case {
    std::string body, where, needle;
  };
  const std::vector<Case> cases{
      {"  - train: {epochs: 0}\n", ":4:21: ", "epochs: 0 is out of range; allowed > 0"},
      {"  - prune: {criterion: l3_norm, uniform: 0.5}\n",
       ":4:24: ", "criterion: 'l3_norm' is not one of l1_norm, l2_norm, l0_norm, fpgm, bn_scale"},
      {"  - eval: {batch: 2, shuffle: true}\n", ":4:22: ", "eval: unknown key 'shuffle'"},
      {"  - sensitivity: {ratios: [0.1, 1.5]}\n",
       ":4:33: ", "ratios: 1.5 is out of range; allowed [0, 1)"},
  };
  for (const auto& c : cases) {
    write_text(path("bad.yaml"), head + c.body);
    auto r = slim("compress " + path("bad.yaml") + " -o " + path("bad_run"));
    EXPECT_NE(r.code, 0) << c.body;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(path("bad.yaml") + c.where + c.needle), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(path("bad_run"))) << c.body;
  }
  // A stage that fails at run time names the stage and where it is in the config.
  write_text(path("bad.yaml"), head + "  - prune: {ratios: {no_such_weights: 0.5}}\n");
  auto r = slim("compress " + path("bad.yaml") + " -o " + path("bad_run"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find(path("bad.yaml") + ":4:5: stage 1 (prune): "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("no_such_weights"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(path("bad_run/01-prune/model.onnx")));
  EXPECT_FALSE(fs::exists(path("bad_run/summary.json")));
}

TEST_F(CompressCli, AutoKeepsTheMostAccurateCandidateThatMeetsTheBudget) {
  // The suites' trained MobileNetV1 (tests/trained_models.h), a short fine-tune, then the ladder.
  onnx_save(test::trained_mnist_mobilenet_v1(), path("trained.onnx"));
  const std::string head = "model: {file: " + path("trained.onnx") +
                           "}\n"
                           "data: mnist:" +
                           test::data_dir("mnist") +
                           "\n"
                           "threads: 2\n"
                           "measure: {max-samples: 1000, latency-runs: 5, latency-warmup: 1}\n"
                           "stages:\n"
                           "  - train: {epochs: 1, batch: 64, max-samples: 256, lr: 0.01}\n";
  write_text(path("auto.yaml"), head);
  // A size budget int8 meets: the ladder stops after its first rung, PTQ with each calibration.
  auto r = slim("compress " + path("auto.yaml") + " -o " + path("auto") +
                " --auto --max-size 5000000 --max-loss 0.05 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const Json summary = Json::parse(r.out);
  const Json& a = summary["stages"].back()["metrics"];
  ASSERT_EQ(a["candidates"].size(), 5u) << a;
  const Json* best = nullptr;
  for (const auto& c : a["candidates"]) {
    EXPECT_EQ(c["name"].get<std::string>().rfind("ptq-", 0), 0u) << c;
    EXPECT_EQ(c["meets"].get<bool>(),
              c["file_bytes"].get<int64_t>() <= 5000000 && c["loss"].get<double>() <= 0.05)
        << c;
    if (c["meets"].get<bool>() && (!best || c["top1"] > (*best)["top1"])) best = &c;
  }
  ASSERT_NE(best, nullptr) << a;
  EXPECT_EQ(a["chosen"], (*best)["name"]);
  EXPECT_EQ(test::read_file(path("auto/02-auto/model.onnx")), test::read_file((*best)["model"]));
  EXPECT_EQ(summary["stages"].back()["metrics"]["measure"]["precision"], "int8");
  EXPECT_NE(test::read_file(path("auto/report.html")).find("id=\"candidates\""), std::string::npos);

  // A budget nothing meets: every rung tried, a clear error naming the closest candidates, the
  // candidates kept, no summary. The first run's input and trained stages, copied into the new
  // folder, are reused (the same config up to the auto stage), so the model is not trained again.
  fs::create_directories(path("auto_none"));
  for (const char* d : {"00-model", "01-train"})
    fs::copy(path(std::string("auto/") + d), path(std::string("auto_none/") + d),
             fs::copy_options::recursive);
  write_text(path("auto_none.yaml"),
             head +
                 "  - auto: {max-size: 1000, algos: [hist], max-samples: 512, "
                 "flops-targets: [0.5], sens-ratios: [0.3, 0.6], sens-max-samples: 200}\n");
  r = slim("compress " + path("auto_none.yaml") + " -o " + path("auto_none"));
  EXPECT_NE(r.code, 0);
  // The stages' progress, then the error as the last line.
  EXPECT_NE(r.err.find("[1/2] train: done before (same config and inputs), reused"),
            std::string::npos)
      << r.err;
  const std::string last = r.err.substr(r.err.rfind('\n', r.err.size() - 2) + 1);
  EXPECT_EQ(last.rfind("slim: error: " + path("auto_none.yaml") +
                           ":7:5: stage 2 (auto): auto: "
                           "no candidate of the ladder meets the budget (float top-1 ",
                       0),
            0u)
      << last;
  EXPECT_NE(last.find("(size 3"), std::string::npos) << last;
  EXPECT_NE(last.find(" > 1000)"), std::string::npos) << last;
  const Json cands = read_json(path("auto_none/02-auto/candidates.json"));
  std::vector<std::string> names;
  for (const auto& c : cands["candidates"]) names.push_back(c["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"ptq-hist", "qat-distill", "prune-0.50"}));
  EXPECT_LT(cands["candidates"][2]["flops"].get<int64_t>(), 10896832 * 6 / 10);
  EXPECT_FALSE(fs::exists(path("auto_none/summary.json")));
  EXPECT_FALSE(fs::exists(path("auto_none/02-auto/model.onnx")));
}

TEST_F(CompressCli, NasStageSearchesAndHandsOnTheBestCandidate) {
  // A short search on Fashion-MNIST under a FLOPs limit, then the best candidate trained on.
  write_text(path("nas.yaml"),
             "model: {zoo: mobilenet_v1, input: [1, 28, 28], classes: 10}\n"
             "data: fashion:" +
                 test::data_dir("fashion") +
                 "\n"
                 "threads: 2\n"
                 "measure: {max-samples: 500, latency-runs: 3, latency-warmup: 1}\n"
                 "stages:\n"
                 "  - nas: {space: mobilenet_v2, steps: 3, max-samples: 256, val-samples: 256,\n"
                 "          batch: 64, lr: 0.05, max-flops: 6000000, latency-runs: 3}\n"
                 "  - train: {epochs: 1, batch: 64, max-samples: 512}\n");
  auto r = slim("compress " + path("nas.yaml") + " -o " + path("nas") + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const Json summary = Json::parse(r.out);
  const Json& nas = summary["stages"][1]["metrics"];
  EXPECT_EQ(nas["rewarded"], 3);
  int64_t trained = 0;
  for (const auto& c : nas["candidates"]) {
    if (c["rejected"].get<bool>()) continue;
    ++trained;
    EXPECT_LE(c["flops"].get<int64_t>(), 6000000) << c;
  }
  EXPECT_EQ(trained, 3);
  const Json best = read_json(path("nas/01-nas/search/best.json"));
  EXPECT_EQ(best["tokens"], nas["best_tokens"]);
  EXPECT_EQ(test::read_file(path("nas/01-nas/model.onnx")),
            test::read_file(path("nas/01-nas/search/best.onnx")));
  EXPECT_LE(summary["stages"][1]["metrics"]["measure"]["flops"].get<int64_t>(), 6000000);
  EXPECT_NE(test::read_file(path("nas/report.html")).find("id=\"nas-nas\""), std::string::npos);
  // The train stage after it started from the searched network.
  EXPECT_EQ(summary["stages"][2]["metrics"]["measure"]["flops"],
            summary["stages"][1]["metrics"]["measure"]["flops"]);
}

TEST_F(CompressCli, EveryStageKeyIsAFlagOfItsCommand) {
  // A config key is the flag without its dashes; `name` and `from` are the pipeline's own, and
  // quant's `mode` is the subcommand.
  for (const std::string& kind : {"train", "eval", "sensitivity", "prune", "distill", "bench",
                                  "quant ptq", "quant qat", "quant weight", "nas"}) {
    auto help = slim(kind + " --help");
    ASSERT_EQ(help.code, 0) << kind << ": " << help.err;
    for (const auto& key : pipeline_stage_keys(kind)) {
      if (key == "name" || key == "from" || key == "mode") continue;
      // "--key " or, for a flag that sets false, "--key{false}".
      EXPECT_TRUE(help.out.find("--" + key + " ") != std::string::npos ||
                  help.out.find("--" + key + "{") != std::string::npos)
          << "stage " << kind << ": key '" << key << "' is not a flag of slim " << kind;
    }
  }
}

}  // namespace
}  // namespace slim
