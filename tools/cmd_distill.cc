// slim distill
#include <algorithm>
#include <iostream>

#include "commands.h"
#include "slim/distill/distill.h"
#include "slim/onnx/onnx_io.h"

namespace slim::cli {

namespace {

struct DistillArgs {
  std::string teacher, student, data, out, prefix = "teacher_";
  ImageFlags image;
  std::vector<std::string> losses, maps;
  TrainFlags flags;
  double task_weight = 1.0;
  bool adapter = false, t2 = false, json = false, no_eval = false;
  int64_t eval_batch = 256;
};

}  // namespace

void add_distill(CLI::App& app) {
  auto a = std::make_shared<DistillArgs>();
  auto* cmd = app.add_subcommand(
      "distill", "Train a student with a frozen teacher's feature maps and logits as targets");
  cmd->add_option("--teacher", a->teacher, "teacher ONNX file (frozen)")->required();
  cmd->add_option("--student", a->student, "student ONNX file to start from")->required();
  cmd->add_option("--data", a->data, "dataset: mnist:DIR, fashion:DIR or folder:DIR")->required();
  add_image_flags(cmd, &a->image);
  cmd->add_option("-o,--output", a->out, "trained student ONNX file (written atomically)")
      ->check(output_file())
      ->required();
  cmd->add_option("--loss", a->losses,
                  "a loss term (repeatable): l2:teacher_VALUE,VALUE[:weight] | "
                  "soft_label:teacher_LOGITS,LOGITS[:T_t,T_s[,weight]] | "
                  "fsp:teacher_A,teacher_B,A,B[:weight] (default: soft_label between the "
                  "teacher's and the student's outputs, when each has one)");
  cmd->add_option("--task-weight", a->task_weight,
                  "weight of the student's cross-entropy on the labels (0: distillation only)")
      ->check(non_negative());
  cmd->add_flag("--adapter", a->adapter,
                "l2 between maps with different channel counts: learn a 1x1 conv on the student "
                "side (not exported)");
  cmd->add_flag("--t2-scale", a->t2, "multiply soft_label losses by T_s^2 (Hinton et al.)");
  cmd->add_option("--map", a->maps,
                  "teacher_input=student_input (repeatable; default: the single inputs)");
  cmd->add_option("--prefix", a->prefix, "prefix of teacher value names in --loss");
  add_train_flags(cmd, &a->flags);
  cmd->add_option("--eval-batch", a->eval_batch, "batch size of the final evaluation")
      ->check(positive());
  cmd->add_flag("--no-eval", a->no_eval, "skip evaluating the student on the test split");
  cmd->add_flag("--json", a->json, "print one JSON object with the results");
  cmd->callback([a] {
    DistillOptions o;
    o.train = a->flags.resolved();
    o.task_weight = a->task_weight;
    o.adapters = a->adapter;
    o.merge.prefix = a->prefix;
    for (const auto& m : a->maps) {
      auto eq = m.find('=');
      SLIM_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < m.size(), "--map '", m,
                 "': expected teacher_input=student_input");
      o.merge.data_name_map[m.substr(0, eq)] = m.substr(eq + 1);
    }
    for (const auto& spec : a->losses) {
      o.losses.push_back(DistillLoss::parse(spec));
      o.losses.back().scale_t2 = a->t2;
    }
    Graph teacher = load_model(a->teacher);
    Graph student = load_model(a->student);
    if (o.losses.empty()) {
      DistillLoss l = distill_default_loss(teacher, student, a->prefix, a->t2);
      o.losses.push_back(l);
      if (lead_rank())
        std::cerr << "distill: loss " << l.describe() << " (the models' outputs; --loss sets it)\n";
    }
    if (teacher.opset != student.opset && lead_rank()) {
      const bool up_teacher = teacher.opset < student.opset;
      std::cerr << "note: " << (up_teacher ? a->teacher : a->student) << ": opset "
                << std::min(teacher.opset, student.opset) << " converted to "
                << std::max(teacher.opset, student.opset) << " (the "
                << (up_teacher ? "student" : "teacher")
                << "'s) with ONNX's version converter, to distill them in one graph"
                << (up_teacher ? "" : "; the student is saved at that opset") << "\n";
    }
    const bool batches = allow_batches(teacher, a->teacher);
    if (!allow_batches(student, a->student) || !batches) o.train.batch_size = 1, a->eval_batch = 1;
    auto train_set = open_data(a->data, Split::kTrain, student, a->image);
    o.train.checkpoint = a->flags.checkpoint_for(a->out);
    o.train.checkpoint_key = checkpoint_key();
    DistillReport r = distill(teacher, student, train_set, o);
    if (lead_rank()) onnx_save(student, a->out);
    remove_checkpoint(o.train);
    nlohmann::json j;
    j["output"] = a->out;
    j["losses"] = r.losses;
    j["adapters"] = r.adapters;
    j["epochs"] = epochs_json(r.epochs);
    if (!a->no_eval) {
      EvalOptions eo;
      eo.batch_size = a->eval_batch;
      eo.threads = o.train.threads;
      eo.progress = o.train.progress;
      eo.group = o.train.group;
      j["eval"] =
          eval_json(evaluate(student, open_data(a->data, Split::kTest, student, a->image), eo));
    }
    if (a->json) {
      std::cout << j.dump() << "\n";
      return;
    }
    for (const auto& l : r.losses) std::cout << "loss " << l << "\n";
    for (const auto& ad : r.adapters) std::cout << "adapter " << ad << "\n";
    std::cout << "saved " << a->out << "\n";
    if (j.contains("eval"))
      std::printf("student test top1 %.4f top5 %.4f loss %.4f (%lld samples)\n",
                  j["eval"]["top1"].get<double>(), j["eval"]["top5"].get<double>(),
                  j["eval"]["loss"].get<double>(),
                  static_cast<long long>(j["eval"]["samples"].get<int64_t>()));
  });
}

}  // namespace slim::cli
