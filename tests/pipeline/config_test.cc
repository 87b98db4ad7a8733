// Pipeline configs: what a valid file becomes, and a clear error (file:line:column, the key, what
// is allowed) for each kind of mistake.
#include "slim/pipeline/config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "test_util.h"

namespace slim {
namespace {

class PipelineConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_dir("pipeline_config");
    path_ = dir_ + "/c.yaml";
    std::ofstream(dir_ + "/teacher.onnx") << "x";  // existence is all the parser checks
  }
  PipelineConfig parse(const std::string& text) { return pipeline_config_parse(text, path_); }
  /// The error for `text`, which must start with "c.yaml:LINE:COLUMN: " and contain `needle`.
  void expect_error(const std::string& text, int line, int column, const std::string& needle) {
    const std::string err = test::error_of([&] { parse(text); });
    const std::string where =
        path_ + ":" + std::to_string(line) + ":" + std::to_string(column) + ": ";
    EXPECT_EQ(err.rfind(where, 0), 0u) << "expected at " << where << "\n" << err;
    EXPECT_NE(err.find(needle), std::string::npos) << err;
    EXPECT_EQ(err.find('\n'), std::string::npos) << err;  // one line
  }
  std::string dir_, path_;
};

const char* kHead =
    "model: {zoo: mobilenet_v1, input: [1, 28, 28], classes: 10}\n"
    "data: mnist:data/mnist\n";

TEST_F(PipelineConfigTest, AValidConfigBecomesTypedStagesWithAbsolutePaths) {
  PipelineConfig c = parse(std::string(kHead) +
                           "threads: 2\n"
                           "measure: {latency-runs: 10, eval-batch: 500}\n"
                           "stages:\n"
                           "  - train: {epochs: 2, lr: 0.05, lr-schedule: cosine, no-shuffle: "
                           "true, boundaries: '1,2', values: [0.1, 0.01, 0.001]}\n"
                           "  - sensitivity:\n"
                           "      params: [conv2_1_sep_weights, conv2_2_sep_weights]\n"
                           "      ratios: 0.1,0.2\n"
                           "  - prune: {loss: 0.01, align: 8}\n"
                           "  - train: {name: fine-tune, epochs: 1}\n"
                           "  - distill: {teacher: train, epochs: 1}\n"
                           "  - distill: {teacher: teacher.onnx}\n"
                           "  - quant: {mode: ptq, algo: kl, batches: 4}\n"
                           "  - quant: {mode: qat, epochs: 1, act-algo: abs_max}\n"
                           "  - bench: {batch: 4}\n");
  EXPECT_EQ(c.model.zoo, "mobilenet_v1");
  EXPECT_EQ(c.model.input, (std::vector<int64_t>{1, 28, 28}));
  EXPECT_EQ(c.data, "mnist:" + dir_ + "/data/mnist");  // from the config's folder
  EXPECT_EQ(c.threads, 2);
  EXPECT_EQ(c.measure.latency_runs, 10);
  EXPECT_EQ(c.measure.eval_batch, 500);
  EXPECT_TRUE(c.measure.eval);
  ASSERT_EQ(c.stages.size(), 9u);
  std::vector<std::string> names;
  for (const auto& s : c.stages) names.push_back(s.name);
  EXPECT_EQ(names, (std::vector<std::string>{"train", "sensitivity", "prune", "fine-tune",
                                             "distill", "distill-2", "quant", "quant-2", "bench"}));
  const auto& t = c.stages[0].params;
  EXPECT_EQ(t["epochs"], 2);
  EXPECT_DOUBLE_EQ(t["lr"].get<double>(), 0.05);
  EXPECT_EQ(t["no-shuffle"], true);
  EXPECT_EQ(t["boundaries"], nlohmann::json({1.0, 2.0}));
  EXPECT_EQ(t["values"].size(), 3u);
  EXPECT_EQ(c.stages[0].keys.at("lr").line, 6);
  EXPECT_EQ(c.stages[1].params["ratios"], nlohmann::json({0.1, 0.2}));
  EXPECT_EQ(c.stages[1].params["params"].size(), 2u);
  EXPECT_EQ(c.stages[4].params["teacher_stage"], "train");
  EXPECT_EQ(c.stages[5].params["teacher"], dir_ + "/teacher.onnx");
  EXPECT_EQ(c.stages[6].params["algo"], "kl");
  EXPECT_EQ(c.stages[7].params["act-algo"], "abs_max");
  EXPECT_EQ(c.stages[6].pos.line, 14);
  // The settings hash covers what changes results, paths included.
  EXPECT_EQ(c.settings()["threads"], 2);
  EXPECT_EQ(c.settings()["model"]["zoo"], "mobilenet_v1");
  // Another model mid-pipeline (a teacher): model-2 by default, its file from the config's
  // folder; exactly one of file and zoo.
  PipelineConfig t2 = parse(std::string(kHead) +
                            "stages:\n  - model: {zoo: resnet34, input: [1, 28, 28], seed: 3}\n"
                            "  - model: {file: teacher.onnx}\n  - distill: {teacher: model-2,"
                            " from: model}\n");
  EXPECT_EQ(t2.stages[0].name, "model-2");
  EXPECT_EQ(t2.stages[0].params["input"], nlohmann::json({1, 28, 28}));
  EXPECT_EQ(t2.stages[1].name, "model-3");
  EXPECT_EQ(t2.stages[1].params["file"], dir_ + "/teacher.onnx");
  EXPECT_EQ(t2.stages[2].params["teacher_stage"], "model-2");
  EXPECT_EQ(t2.stages[2].params["from"], "model");
  // prune's sens: an earlier sensitivity stage by name, or a file from the config's folder.
  PipelineConfig ps = parse(std::string(kHead) +
                            "stages:\n  - sensitivity: {name: s1}\n  - sensitivity: {name: s2}\n"
                            "  - prune: {loss: 0.01, sens: s1}\n"
                            "  - prune: {flops-target: 0.5, sens: teacher.onnx}\n");
  EXPECT_EQ(ps.stages[2].params["sens_stage"], "s1");
  EXPECT_FALSE(ps.stages[2].params.contains("sens"));
  EXPECT_EQ(ps.stages[3].params["sens"], dir_ + "/teacher.onnx");
  EXPECT_NE(test::error_of([&] {
              parse(std::string(kHead) + "stages:\n  - model: {zoo: resnet34, file: t.onnx}\n");
            }).find("c.yaml:4:5: model: give exactly one of file: M.onnx or zoo: NAME"),
            std::string::npos);
  // Prune ratios as a map or in the CLI's NAME=R form.
  PipelineConfig r = parse(std::string(kHead) +
                           "stages:\n  - prune: {ratios: {a: 0.5, b: 0.25}}\n"
                           "  - prune: {ratios: 'a=0.5,b=0.25'}\n");
  EXPECT_EQ(r.stages[0].params["ratios"], r.stages[1].params["ratios"]);
  // Folder images: each setting one string as its flag takes it, or a YAML list of its values.
  const std::string stages = "stages:\n  - bench: {batch: 1}\n";
  PipelineConfig lists = parse(std::string(kHead) +
                               "image: {image-size: [224, 192], mean: [0.485, 0.456, 0.406], "
                               "std: imagenet, channel-order: bgr}\n" +
                               stages);
  EXPECT_EQ(lists.image.size, "224,192");
  EXPECT_EQ(lists.image.mean, "0.485,0.456,0.406");
  EXPECT_EQ(lists.image.std, "imagenet");
  EXPECT_EQ(lists.image.order, "bgr");
  PipelineConfig strings =
      parse(std::string(kHead) + "image: {image-size: '224,192', mean: '0.5,0.5,0.5'}\n" + stages);
  EXPECT_EQ(strings.image.size, "224,192");
  EXPECT_EQ(strings.image.mean, "0.5,0.5,0.5");
  expect_error(std::string(kHead) + "image: {image-size: []}\n" + stages, 3, 21,
               "image-size: the list is empty");
  expect_error(std::string(kHead) + "image: {mean: [[1, 2]]}\n" + stages, 3, 16,
               "mean: expected a single value, not a list");
}

TEST_F(PipelineConfigTest, EachMistakeIsAnErrorAtItsLineAndColumn) {
  const std::string s = std::string(kHead) + "stages:\n";  // stages start on line 4
  // 1. Not YAML.
  expect_error(s + "  - train: {epochs: 1\n", 5, 1, "not valid YAML");
  // 2. Unknown top-level key.
  expect_error(std::string(kHead) + "thread: 2\nstages:\n  - eval:\n", 3, 1,
               "unknown key 'thread'; allowed: model, data, threads, image, measure, stages");
  // 3. Unknown stage.
  expect_error(s + "  - trian: {epochs: 1}\n", 4, 5,
               "unknown stage 'trian'; allowed: train, eval, sensitivity, prune, distill, quant");
  // 4. Unknown key in a stage, with the keys allowed.
  expect_error(s + "  - train: {epochs: 1, learning-rate: 0.1}\n", 4, 24,
               "train: unknown key 'learning-rate'; allowed: name, from, epochs, batch, lr,");
  // 5. Wrong type.
  expect_error(s + "  - train: {epochs: one}\n", 4, 21, "epochs: 'one' is not an integer");
  // 6. Out of range.
  expect_error(s + "  - train:\n      lr: -0.1\n", 5, 11, "lr: -0.1 is out of range; allowed > 0");
  // 7. Not one of the allowed values.
  expect_error(s + "  - quant: {mode: ptq, algo: entropy}\n", 4, 30,
               "algo: 'entropy' is not one of hist, kl, mse, avg, abs_max");
  // 8. A key of another quant mode.
  expect_error(
      s + "  - quant: {mode: ptq, epochs: 3}\n", 4, 24,
      "quant ptq: key 'epochs' applies to mode qat only; allowed here: name, from, mode, algo");
  // 9. Quant without a mode.
  expect_error(s + "  - quant: {algo: hist}\n", 4, 5, "quant: 'mode' is missing");
  // 10. Prune with two ways of choosing.
  expect_error(s + "  - prune: {uniform: 0.3, flops-target: 0.5}\n", 4, 5,
               "prune: give one of ratios, loss");
  // 11. Prune by loss without any sensitivity.
  expect_error(s + "  - prune: {loss: 0.01}\n", 4, 13,
               "loss needs a sensitivity stage before it or sens: FILE");
  // 12. Distill from a teacher that is neither a stage nor a file.
  expect_error(s + "  - distill: {teacher: nothere.onnx}\n", 4, 15,
               "teacher 'nothere.onnx' is neither an earlier stage's name nor an existing file");
  // 13. Two stages with one name.
  expect_error(s + "  - train: {epochs: 1}\n  - train: {name: train}\n", 5, 5,
               "stage name 'train' is used twice");
  // 14. A key given twice.
  expect_error(s + "  - train: {epochs: 1, epochs: 2}\n", 4, 24, "key 'epochs' given twice");
  // 15. A pruning ratio of 1.
  expect_error(s + "  - prune: {ratios: {conv1_weights: 1}}\n", 4, 37,
               "is out of range; allowed [0, 1)");
  // 16. Unknown zoo model.
  expect_error("model: {zoo: resnet5}\ndata: mnist:d\nstages:\n  - eval:\n", 1, 14,
               "model.zoo: 'resnet5' is not one of");
  // 17. A model file that does not exist.
  expect_error("model: {file: none.onnx}\ndata: mnist:d\nstages:\n  - eval:\n", 1, 8,
               "model: file '" + dir_ + "/none.onnx' does not exist");
  // 18. No stages; no data where the stages need it.
  expect_error(std::string(kHead) + "stages: []\n", 3, 9, "stages: expected a list of stages");
  expect_error("model: {zoo: mobilenet_v1}\nstages:\n  - train:\n", 1, 1, "'data' is missing");
  // 19. A bool that is not one.
  expect_error(s + "  - train: {no-shuffle: yes please}\n", 4, 25,
               "no-shuffle: 'yes please' is not true or false");
  // 20. Piecewise schedule without its lists.
  expect_error(s + "  - train: {lr-schedule: piecewise}\n", 4, 13,
               "piecewise needs boundaries and values");
  // 21. A comma inside a flow map starts a new key: said so.
  expect_error("model: {zoo: mobilenet_v1, input: 1,28,28}\ndata: mnist:d\nstages:\n  - eval:\n", 1,
               37,
               "unknown key '28'; allowed: file, zoo, input, classes, scale, seed (inside "
               "{...} a comma starts a new key");
  // 22. A stage name is a folder name.
  expect_error(s + "  - train: {name: ../up}\n", 4, 19, "name: '../up': use letters, digits");
  // 23. A sensitivity file with explicit ratios; loss and a FLOPs target together.
  expect_error(s + "  - prune: {ratios: {a: 0.5}, sens: teacher.onnx}\n", 4, 31,
               "prune: sens goes with loss or flops-target, not with ratios");
  expect_error(s + "  - prune: {loss: 0.01, flops-target: 0.5, sens: teacher.onnx}\n", 4, 13,
               "prune: give loss or flops-target, not both");
  // A sens that is neither a sensitivity stage nor a file (a train stage's name is neither).
  expect_error(s + "  - sensitivity: {name: sens-a}\n  - prune: {loss: 0.01, sens: train}\n", 5, 25,
               "prune: sens 'train' is neither an earlier sensitivity stage's name nor an "
               "existing file");
  // 24. An unknown data kind.
  expect_error("model: {zoo: mobilenet_v1}\ndata: imagenet:/d\nstages:\n  - eval:\n", 2, 7,
               "data 'imagenet:/d': expected KIND:DIR with KIND mnist, fashion or folder");
  // 25. An auto stage without the measurements it chooses by (measure may come after stages).
  expect_error(s + "  - auto: {max-latency-ms: 1}\nmeasure: {latency-runs: 0}\n", 4, 5,
               "auto: max-latency-ms needs the config's measure to time models");
  expect_error(s + "  - auto: {max-size: 1000}\nmeasure: {eval: false}\n", 4, 5,
               "auto: candidates are compared by top-1");
  // 26. Two FLOPs targets that name one rung; an auto stage without a budget.
  expect_error(s + "  - auto: {max-size: 1000, flops-targets: [0.301, 0.3]}\n", 4, 28,
               "auto: flops-targets has 0.30 twice");
  expect_error(s + "  - auto: {max-loss: 0.02}\n", 4, 5,
               "auto: give the budget: max-latency-ms and/or max-size");
  // 27. A value spanning lines is echoed on one line.
  expect_error(s + "  - train:\n      optimizer: |\n        sgd\n        fast\n", 5, 18,
               "optimizer: 'sgd\\nfast\\n' is not one of momentum, adam");
  // Comma-separated values may have spaces.
  EXPECT_EQ(parse(s + "  - sensitivity: {params: 'a, b', ratios: '0.1, 0.2'}\n")
                .stages[0]
                .params["params"],
            nlohmann::json({"a", "b"}));
  // A loss term holds commas of its own: one term as a scalar, or a list of terms.
  EXPECT_EQ(parse(s + "  - train: {epochs: 1}\n  - distill: {teacher: train, loss: "
                      "'soft_label:t_logits,logits:2,2,0.5'}\n")
                .stages[1]
                .params["loss"],
            nlohmann::json({"soft_label:t_logits,logits:2,2,0.5"}));
  EXPECT_EQ(parse(s + "  - train: {epochs: 1}\n  - quant: {mode: qat, teacher: train, loss: "
                      "['l2:t_a,a', 'l2:t_b,b:2']}\n")
                .stages[1]
                .params["loss"],
            nlohmann::json({"l2:t_a,a", "l2:t_b,b:2"}));
  // A missing file names it.
  EXPECT_NE(test::error_of([&] {
              pipeline_config_load(dir_ + "/none.yaml");
            }).find("cannot read config '" + dir_ + "/none.yaml'"),
            std::string::npos);
}

TEST_F(PipelineConfigTest, StageKeysListedPerKindAndQuantMode) {
  EXPECT_EQ(pipeline_stage_kinds(),
            (std::vector<std::string>{"train", "eval", "sensitivity", "prune", "distill", "quant",
                                      "bench", "nas", "model", "auto"}));
  const auto ptq = pipeline_stage_keys("quant ptq");
  EXPECT_NE(std::find(ptq.begin(), ptq.end(), "algo"), ptq.end());
  EXPECT_EQ(std::find(ptq.begin(), ptq.end(), "epochs"), ptq.end());
  const auto qat = pipeline_stage_keys("quant qat");
  EXPECT_NE(std::find(qat.begin(), qat.end(), "epochs"), qat.end());
  EXPECT_NE(std::find(qat.begin(), qat.end(), "max-samples"), qat.end());
  EXPECT_NE(test::error_of([] { pipeline_stage_keys("search"); }).find("unknown stage 'search'"),
            std::string::npos);
}

}  // namespace
}  // namespace slim
