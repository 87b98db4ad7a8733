// slim quant ptq | qat | weight | embedding
#include <filesystem>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "slim/exec/executor.h"
#include "slim/onnx/onnx_io.h"
#include "slim/pipeline/compose.h"
#include "slim/quant/post_training.h"
#include "slim/quant/qat.h"
#include "slim/quant/quant_targets.h"
#include "slim/quant/quantize_embedding.h"
#include "slim/quant/quantize_weights.h"

namespace slim::cli {

namespace {

/// Flags that fill QuantOptions, shared by the subcommands.
struct QuantFlags {
  QuantOptions opts;
  std::string weight_algo = "channel_wise_abs_max", act_algo = "moving_average_abs_max";
  std::vector<std::string> op_types;
  bool float_outputs = false;
  QuantOptions resolved() const {
    QuantOptions o = opts;
    o.quantize_outputs = !float_outputs;
    o.weight_algo = weight_quant_algo_from_string(weight_algo);
    o.act_algo = act_quant_algo_from_string(act_algo);
    if (!op_types.empty()) o.quantize_op_types = op_types;
    return o;
  }
};

void add_quant_flags(CLI::App* cmd, QuantFlags* f, bool activations) {
  cmd->add_option("--weight-algo", f->weight_algo,
                  "weight scales: channel_wise_abs_max (per output channel) or abs_max");
  cmd->add_option("--weight-bits", f->opts.weight_bits, "weight bits (QDQ export: 2..8)");
  if (activations) {
    cmd->add_option("--act-bits", f->opts.act_bits, "activation bits (QDQ export: 8)");
    cmd->add_flag("--float-outputs", f->float_outputs,
                  "leave the outputs of quantized ops in float where no quantized op reads them "
                  "(by default they are quantized too, so ONNX Runtime runs every quantized conv "
                  "as QLinearConv)");
  }
  cmd->add_option("--op-types", f->op_types, "op types to quantize (default Conv,Gemm,MatMul)")
      ->delimiter(',');
  cmd->add_option("--not-quant-pattern", f->opts.not_quant_pattern,
                  "leave nodes whose name matches this regex in float");
}

int64_t file_size(const std::string& path) {
  std::error_code ec;
  auto s = std::filesystem::file_size(path, ec);
  return ec ? -1 : static_cast<int64_t>(s);
}

void print_size(nlohmann::json& j, const std::string& in, const std::string& out) {
  int64_t a = file_size(in), b = file_size(out);
  j["size_in"] = a;
  j["size_out"] = b;
  if (a > 0 && b >= 0) j["size_ratio"] = static_cast<double>(b) / static_cast<double>(a);
}

void report(const nlohmann::json& j, bool json) {
  if (json) {
    std::cout << j.dump() << "\n";
    return;
  }
  if (j.contains("table_written")) std::cout << "scale table " << j["table_written"] << "\n";
  if (j.contains("output")) std::cout << "saved " << j["output"].get<std::string>() << "\n";
  if (j.contains("size_ratio"))
    std::printf("size %lld -> %lld bytes (%.1f%%)\n",
                static_cast<long long>(j["size_in"].get<int64_t>()),
                static_cast<long long>(j["size_out"].get<int64_t>()),
                100.0 * j["size_ratio"].get<double>());
  if (j.contains("skipped"))
    for (const auto& s : j["skipped"])
      std::cout << "left in float: " << s.get<std::string>() << "\n";
  for (const char* k : {"float", "quantized"})
    if (j.contains("eval") && j["eval"].contains(k))
      std::printf("%s test top1 %.4f top5 %.4f (%lld samples)\n", k,
                  j["eval"][k]["top1"].get<double>(), j["eval"][k]["top5"].get<double>(),
                  static_cast<long long>(j["eval"][k]["samples"].get<int64_t>()));
}

struct PtqArgs {
  std::string model, data, out, table, algo = "hist";
  ImageFlags image;
  QuantFlags quant;
  CalibOptions calib;
  bool bias_correction = false, no_fold_bn = false, eval = false, json = false;
  int64_t eval_batch = 256;
};

void add_ptq(CLI::App* parent) {
  auto a = std::make_shared<PtqArgs>();
  auto* cmd = parent->add_subcommand(
      "ptq",
      "Post-training static int8 quantization: calibrate activation scales on data, "
      "write the scale table and/or the QDQ model");
  cmd->add_option("model", a->model, "float ONNX model")->required();
  cmd->add_option("--data", a->data,
                  "calibration data (train split, file order): mnist:DIR, fashion:DIR, folder:DIR "
                  "(images resized to the model's input); without it, --table must name an "
                  "existing table to apply");
  add_image_flags(cmd, &a->image);
  cmd->add_option("-o,--output", a->out, "quantized QDQ ONNX file (written atomically)")
      ->check(output_file());
  cmd->add_option("--table", a->table,
                  "scale table JSON: written after calibration (with --data; without -o the "
                  "command stops there), or read and applied (without --data)");
  cmd->add_option("--algo", a->algo, "activation calibration: hist, kl, mse, avg or abs_max")
      ->check(CLI::IsMember({"hist", "kl", "KL", "mse", "avg", "abs_max"}));
  cmd->add_option("--batches", a->calib.batches, "calibrate on the first N batches (0: all)")
      ->check(non_negative());
  cmd->add_option("--batch-size", a->calib.batch_size, "calibration batch size")->check(positive());
  cmd->add_option("--max-samples", a->calib.max_samples, "use the first N samples only")
      ->check(non_negative());
  cmd->add_option("--kl-max-clip", a->calib.kl_max_clip,
                  "kl: the largest share of |x| the threshold may clip (1: MXNet's unguarded kl)");
  cmd->add_option("--hist-percent", a->calib.hist_percent, "hist: percentile of |x| to keep")
      ->check(CLI::Range(0.5, 1.0));
  cmd->add_flag("--bias-correction", a->bias_correction,
                "correct each weight's mean and spread of quantization error per channel");
  cmd->add_flag("--no-fold-bn", a->no_fold_bn, "do not fold BatchNormalization into convs");
  add_quant_flags(cmd, &a->quant, true);
  cmd->add_flag("--eval", a->eval,
                "evaluate the float and the quantized model on the test split of --data");
  cmd->add_option("--eval-batch", a->eval_batch, "evaluation batch size")->check(positive());
  cmd->add_flag("--json", a->json, "print one JSON object with the results");
  add_threads_option(cmd, &a->calib.threads);
  cmd->callback([a] {
    SLIM_CHECK(!a->out.empty() || !a->table.empty(),
               "slim quant ptq: nothing to write: give -o Q.onnx and/or --table SCALES.json");
    SLIM_CHECK(!a->data.empty() || (!a->table.empty() && !a->out.empty()),
               "slim quant ptq: no calibration data: give --data, or --table SCALES.json with "
               "-o to apply a table written before");
    SLIM_CHECK(!a->eval || !a->data.empty(), "slim quant ptq: --eval needs --data");
    PtqOptions o;
    o.quant = a->quant.resolved();
    o.calib = a->calib;
    o.calib.algo = calib_algo_from_string(a->algo);
    o.fold_bn = !a->no_fold_bn;
    o.bias_correction = a->bias_correction;
    Graph g = load_model(a->model);
    // Before the float evaluation, which would otherwise run first and be wasted.
    check_not_quantized(g, "slim quant ptq: '" + a->model + "'");
    if (!allow_batches(g, a->model)) o.calib.batch_size = 1, a->eval_batch = 1;
    nlohmann::json j;
    j["model"] = a->model;
    EvalOptions eo;
    eo.batch_size = a->eval_batch;
    eo.threads = a->calib.threads;
    if (a->eval)
      j["eval"]["float"] =
          eval_json(evaluate(g, open_data(a->data, Split::kTest, g, a->image), eo));
    ScaleTable table;
    if (!a->data.empty()) {
      table = ptq_calibrate(g, open_data(a->data, Split::kTrain, g, a->image, false), o);
      table.model = a->model;
      if (!a->table.empty()) {
        scale_table_save(table, a->table);
        j["table_written"] = a->table;
      }
    } else {
      table = scale_table_load(a->table);
      j["table_read"] = a->table;
    }
    j["algo"] = table.algo;
    j["calibration_samples"] = table.samples;
    if (!a->out.empty()) {
      QdqReport r = ptq_apply(g, table, o);
      onnx_save(g, a->out);
      j["output"] = a->out;
      j["nodes"] = r.nodes;
      j["activations"] = r.activations;
      j["weights"] = r.weights;
      j["skipped"] = r.skipped;
      print_size(j, a->model, a->out);
      if (a->eval)
        j["eval"]["quantized"] =
            eval_json(evaluate(g, open_data(a->data, Split::kTest, g, a->image), eo));
    }
    report(j, a->json);
  });
}

struct QatArgs {
  std::string model, data, out, fold_bn = "before", teacher;
  std::vector<std::string> losses;
  double task_weight = 1.0;
  bool t2 = false;
  ImageFlags image;
  QuantFlags quant;
  TrainFlags flags;
  bool json = false, no_eval = false;
  int64_t eval_batch = 256;
};

void add_qat(CLI::App* parent) {
  auto a = std::make_shared<QatArgs>();
  a->flags.opts.lr = 0.001;  // fine-tuning a trained model: 0.01 already lost points here
  auto* cmd = parent->add_subcommand(
      "qat", "Quant-aware training: fake-quantize weights and activations, fine-tune, export QDQ");
  cmd->add_option("model", a->model, "trained float ONNX model")->required();
  cmd->add_option("--data", a->data, "dataset: mnist:DIR, fashion:DIR or folder:DIR")->required();
  add_image_flags(cmd, &a->image);
  cmd->add_option("-o,--output", a->out, "quantized QDQ ONNX file (written atomically)")
      ->check(output_file())
      ->required();
  add_quant_flags(cmd, &a->quant, true);
  cmd->add_option("--act-algo", a->quant.act_algo,
                  "activation scales: moving_average_abs_max, abs_max or range_abs_max");
  cmd->add_option("--moving-rate", a->quant.opts.moving_rate, "moving_average_abs_max rate");
  cmd->add_option("--window-size", a->quant.opts.window_size, "range_abs_max window (batches)");
  cmd->add_option("--fold-bn", a->fold_bn,
                  "fold BatchNormalization into convs before training (default) or after")
      ->check(CLI::IsMember({"before", "after"}));
  cmd->add_option("--teacher", a->teacher,
                  "train with distillation from this float model (e.g. the model before "
                  "quantization): QAT with distillation");
  cmd->add_option("--loss", a->losses,
                  "with --teacher: a loss term as slim distill's --loss (default: soft_label "
                  "between the two models' outputs)");
  cmd->add_option("--task-weight", a->task_weight,
                  "with --teacher: weight of the cross-entropy on the labels")
      ->check(non_negative());
  cmd->add_flag("--t2-scale", a->t2, "with --teacher: multiply soft_label losses by T_s^2");
  add_train_flags(cmd, &a->flags);
  cmd->add_option("--eval-batch", a->eval_batch, "evaluation batch size")->check(positive());
  cmd->add_flag("--no-eval", a->no_eval, "skip evaluating on the test split");
  cmd->add_flag("--json", a->json, "print one JSON object with the results");
  cmd->callback([a] {
    SLIM_CHECK(!a->teacher.empty() || (a->losses.empty() && !a->t2 && a->task_weight == 1.0),
               "slim quant qat: --loss, --task-weight and --t2-scale need --teacher");
    QatOptions o;
    o.quant = a->quant.resolved();
    o.train = a->flags.resolved();
    o.fold_bn_before = a->fold_bn == "before";
    Graph g = load_model(a->model);
    check_not_quantized(g, "slim quant qat: '" + a->model + "'");
    if (!allow_batches(g, a->model)) o.train.batch_size = 1, a->eval_batch = 1;
    nlohmann::json j;
    j["model"] = a->model;
    EvalOptions eo;
    eo.batch_size = a->eval_batch;
    eo.threads = o.train.threads;
    eo.progress = o.train.progress;
    eo.group = o.train.group;
    o.train.checkpoint = a->flags.checkpoint_for(a->out);
    o.train.checkpoint_key = checkpoint_key();
    auto test = a->no_eval ? nullptr : open_data(a->data, Split::kTest, g, a->image);
    if (test) j["eval"]["float"] = eval_json(evaluate(g, test, eo));
    QatReport r;
    if (a->teacher.empty()) {
      r = quant_aware_train(g, open_data(a->data, Split::kTrain, g, a->image), o);
    } else {
      Graph teacher = load_model(a->teacher);
      if (!allow_batches(teacher, a->teacher)) o.train.batch_size = 1;
      DistillOptions d;
      d.train = o.train;
      d.task_weight = a->task_weight;
      for (const auto& spec : a->losses) {
        d.losses.push_back(DistillLoss::parse(spec));
        d.losses.back().scale_t2 = a->t2;
      }
      r = quant_aware_distill(g, teacher, open_data(a->data, Split::kTrain, g, a->image), o, d,
                              a->t2);
    }
    if (lead_rank()) onnx_save(g, a->out);
    remove_checkpoint(o.train);
    j["output"] = a->out;
    j["epochs"] = epochs_json(r.epochs);
    j["nodes"] = r.qdq.nodes;
    j["skipped"] = r.qdq.skipped;
    if (lead_rank()) print_size(j, a->model, a->out);
    if (test) j["eval"]["quantized"] = eval_json(evaluate(g, test, eo));
    report(j, a->json);
  });
}

struct WeightArgs {
  std::string model, out;
  int bits = 8;
  QuantFlags quant;
  bool json = false;
};

void add_weight(CLI::App* parent) {
  auto a = std::make_shared<WeightArgs>();
  auto* cmd = parent->add_subcommand(
      "weight", "Weight-only quantization (no data): int8 or int16 per-channel weights");
  cmd->add_option("model", a->model, "float ONNX model")->required();
  cmd->add_option("-o,--output", a->out, "output ONNX file (written atomically)")
      ->required()
      ->check(output_file());
  cmd->add_option("--bits", a->bits, "8 (int8, DequantizeLinear) or 16 (int16, Cast+Mul); 2..16");
  cmd->add_option("--weight-algo", a->quant.weight_algo, "channel_wise_abs_max or abs_max");
  cmd->add_option("--op-types", a->quant.op_types, "op types (default Conv,Gemm,MatMul)")
      ->delimiter(',');
  cmd->add_option("--not-quant-pattern", a->quant.opts.not_quant_pattern,
                  "leave nodes whose name matches this regex in float");
  cmd->add_flag("--json", a->json, "print one JSON object with the results");
  cmd->callback([a] {
    Graph g = load_model(a->model);
    WeightOnlyReport r = quantize_weights(g, a->bits, a->quant.resolved());
    onnx_save(g, a->out);
    nlohmann::json j;
    j["output"] = a->out;
    j["weights"] = r.weights;
    j["skipped"] = r.skipped;
    print_size(j, a->model, a->out);
    report(j, a->json);
  });
}

struct EmbeddingArgs {
  std::string model, out;
  EmbeddingOptions opts;
  bool json = false;
};

void add_embedding(CLI::App* parent) {
  auto a = std::make_shared<EmbeddingArgs>();
  auto* cmd = parent->add_subcommand(
      "embedding", "Embedding quantization: Gather tables to int8 (abs_max, optional clipping)");
  cmd->add_option("model", a->model, "float ONNX model")->required();
  cmd->add_option("-o,--output", a->out, "output ONNX file (written atomically)")
      ->required()
      ->check(output_file());
  cmd->add_option("--threshold", a->opts.threshold,
                  "clip tables to [-T, T] (0: max |W|, or its 99.99th percentile when >= 1)")
      ->check(non_negative());
  cmd->add_option("--pattern", a->opts.pattern, "only Gather nodes whose name matches this regex");
  cmd->add_flag("--json", a->json, "print one JSON object with the results");
  cmd->callback([a] {
    Graph g = load_model(a->model);
    EmbeddingReport r = quantize_embedding(g, a->opts);
    onnx_save(g, a->out);
    nlohmann::json j;
    j["output"] = a->out;
    j["tables"] = r.tables;
    j["thresholds"] = r.thresholds;
    print_size(j, a->model, a->out);
    report(j, a->json);
  });
}

}  // namespace

void add_quant(CLI::App& app) {
  auto* cmd = app.add_subcommand("quant", "Quantize a model: ptq, qat, weight, embedding");
  cmd->require_subcommand(1);
  add_ptq(cmd);
  add_qat(cmd);
  add_weight(cmd);
  add_embedding(cmd);
}

}  // namespace slim::cli
